// Injected bugs for mutation tests: proving the gates can fail. Each one
// reproduces a porting bug seen in the wild, and a test_*mutations.cpp file
// names the gate that must catch it (docs/tolerances.md, "Mutation tests").
//
// Two builds (reference/CMakeLists.txt). zimage_ref, the shipped library (installed; linked by
//   `zimage`, the bench and every test but the mutation tests), has no ZIMAGE_MUTANTS: mutated()
//   is a constexpr false, so every `if (mutated(...))` branch is compiled out, and set_mutation,
//   active_mutation, mutation_name and ScopedMutation do not exist (code that sets a mutation
//   does not compile against it). tests/check_no_mutation_symbols.cmake checks with nm that
//   `zimage` and libzimage_ref.a hold none of those symbols. zimage_ref_mutants, test-only, has
//   ZIMAGE_MUTANTS as a PUBLIC definition (the reference is mostly header templates instantiated
//   in the tests' own translation units, which must see the same mutated()); only the
//   test_*mutations.cpp executables link it, never together with zimage_ref. The sources that
//   reach no mutation branch are compiled once for both libraries, with ZIMAGE_MUTATION_FREE
//   (end of this file: one that reaches a branch fails to link); only
//   ZIMAGE_REF_MUTATION_SOURCES are compiled twice.
#pragma once

namespace zimage {

enum class Mutation {
  None,
  RopeHalfSplit,            // rotate (x[k], x[k+D/2]) instead of (x[2k], x[2k+1])
  RopeAxesPermuted,         // axis tables concatenated as (1, 0, 2)
  RopeTheta10000,           // theta 10000 instead of the config's 256
  PositionsFromZero,        // caption positions 0..Lc-1, image at Lc
  NoGateTanh,               // gates used without tanh
  ScaleWithoutOne,          // scale instead of 1 + scale
  SiluBeforeBlockAdaLN,     // SiLU on adaln_input before the block adaLN Linear
  TScaleOne,                // t_scale 1 instead of 1000
  PadTokensNotSubstituted,  // pad rows keep the repeated last row's embedding
  PadPositionsSwapped,      // caption pad rows get (0,0,0); image pad rows get (Lc+1,0,0)
  NoAttentionScale,         // softmax(q k^T) without 1/sqrt(D)
  RmsNormEps1e6,            // RMSNorm eps 1e-6 instead of the config's 1e-5
  TimestepSinFirst,         // sinusoidal embedding as [sin, cos]
  // Pipeline, scheduler and VAE.
  SigmasTimestepsOutOfStep, // timestep i paired with sigma i+1 (shifted by one step)
  NoOutputNegation,         // transformer output used as v without the pipeline's minus sign
  GroupNormUnbiased,        // GroupNorm variance divided by N-1 instead of N
  NoPostQuantConv,          // post_quant_conv skipped although the config has one
  WrongLatentScale,         // decode with latents * scaling_factor - shift (inverted)
  // Text encoder.
  TextHiddenLayerLast,      // hidden_states[-1] (after the final norm) taken where -2 was asked for
  TextNoCausalMask,         // Qwen3 attention without the causal mask (padding mask only)
  TextRopeInterleaved,      // Qwen3 RoPE on interleaved pairs (x[2k], x[2k+1]) instead of rotate_half
};

#ifdef ZIMAGE_MUTANTS
const char* mutation_name(Mutation m);
Mutation active_mutation();
// Not thread-safe against a running forward: set before, reset after.
void set_mutation(Mutation m);
inline bool mutated(Mutation m) { return active_mutation() == m; }

// RAII guard for tests: sets a mutation for one scope.
struct ScopedMutation {
  explicit ScopedMutation(Mutation m) { set_mutation(m); }
  ~ScopedMutation() { set_mutation(Mutation::None); }
  ScopedMutation(const ScopedMutation&) = delete;
  ScopedMutation& operator=(const ScopedMutation&) = delete;
};
#elif !defined(ZIMAGE_MUTATION_FREE)
// The shipped build: no switch, no branch.
constexpr bool mutated(Mutation) { return false; }
#endif

}  // namespace zimage

#ifdef ZIMAGE_MUTATION_FREE
namespace zimage {
// Sources compiled once for both libraries (zimage_ref_shared in reference/CMakeLists.txt) and the
// CUDA kernels (zimage_cuda_kernels): they must reach no mutation branch, or the shipped copy of
// it would end up in the mutants. Here mutated() is declared and defined nowhere, so a source
// that calls it, itself or through a template it instantiates, fails to link, naming
// zimage::mutation_free::mutated: add that source to ZIMAGE_REF_MUTATION_SOURCES.
namespace mutation_free {
bool mutated(Mutation m);
}  // namespace mutation_free
using mutation_free::mutated;
}  // namespace zimage
#endif
