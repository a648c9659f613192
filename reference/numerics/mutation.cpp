// The mutation switch: compiled only into zimage_ref_mutants (numerics/mutation.h); in the shipped
// zimage_ref this file is empty.
#include "numerics/mutation.h"

#ifdef ZIMAGE_MUTANTS

#include <atomic>

namespace zimage {

namespace {
std::atomic<Mutation> g_mutation{Mutation::None};
}

Mutation active_mutation() { return g_mutation.load(std::memory_order_relaxed); }
void set_mutation(Mutation m) { g_mutation.store(m, std::memory_order_relaxed); }

const char* mutation_name(Mutation m) {
  switch (m) {
    case Mutation::None: return "none";
    case Mutation::RopeHalfSplit: return "rope_half_split";
    case Mutation::RopeAxesPermuted: return "rope_axes_permuted";
    case Mutation::RopeTheta10000: return "rope_theta_10000";
    case Mutation::PositionsFromZero: return "positions_from_zero";
    case Mutation::NoGateTanh: return "no_gate_tanh";
    case Mutation::ScaleWithoutOne: return "scale_without_one";
    case Mutation::SiluBeforeBlockAdaLN: return "silu_before_block_adaln";
    case Mutation::TScaleOne: return "t_scale_one";
    case Mutation::PadTokensNotSubstituted: return "pad_tokens_not_substituted";
    case Mutation::PadPositionsSwapped: return "pad_positions_swapped";
    case Mutation::NoAttentionScale: return "no_attention_scale";
    case Mutation::RmsNormEps1e6: return "rmsnorm_eps_1e-6";
    case Mutation::TimestepSinFirst: return "timestep_sin_first";
    case Mutation::SigmasTimestepsOutOfStep: return "sigmas_timesteps_out_of_step";
    case Mutation::NoOutputNegation: return "no_output_negation";
    case Mutation::GroupNormUnbiased: return "groupnorm_unbiased";
    case Mutation::NoPostQuantConv: return "no_post_quant_conv";
    case Mutation::WrongLatentScale: return "wrong_latent_scale";
    case Mutation::TextHiddenLayerLast: return "text_hidden_layer_last";
    case Mutation::TextNoCausalMask: return "text_no_causal_mask";
    case Mutation::TextRopeInterleaved: return "text_rope_interleaved";
  }
  return "?";
}

}  // namespace zimage

#endif  // ZIMAGE_MUTANTS
