// Injected bugs for mutation tests (../shared/docs/numerics.md, "Proving the
// gates can fail"). Only tests set a mutation; the CLI never does. Each one
// reproduces a porting bug seen in the wild, and tests/golden/
// test_mutations.cpp names the gate that must catch it.
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
  // Pipeline, scheduler and VAE (issue 4).
  SigmasTimestepsOutOfStep, // timestep i paired with sigma i+1 (shifted by one step)
  NoOutputNegation,         // transformer output used as v without the pipeline's minus sign
  GroupNormUnbiased,        // GroupNorm variance divided by N-1 instead of N
  NoPostQuantConv,          // post_quant_conv skipped although the config has one
  WrongLatentScale,         // decode with latents * scaling_factor - shift (inverted)
  // Text encoder (issue 5).
  TextHiddenLayerLast,      // hidden_states[-1] (after the final norm) taken where -2 was asked for
  TextNoCausalMask,         // Qwen3 attention without the causal mask (padding mask only)
  TextRopeInterleaved,      // Qwen3 RoPE on interleaved pairs (x[2k], x[2k+1]) instead of rotate_half
};

const char* mutation_name(Mutation m);
Mutation active_mutation();
// Tests only. Not thread-safe against a running forward: set before, reset after.
void set_mutation(Mutation m);
inline bool mutated(Mutation m) { return active_mutation() == m; }

// RAII guard for tests: sets a mutation for one scope.
struct ScopedMutation {
  explicit ScopedMutation(Mutation m) { set_mutation(m); }
  ~ScopedMutation() { set_mutation(Mutation::None); }
  ScopedMutation(const ScopedMutation&) = delete;
  ScopedMutation& operator=(const ScopedMutation&) = delete;
};

}  // namespace zimage
