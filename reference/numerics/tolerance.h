// The one tolerance policy (docs/tolerances.md), used by every test
// and by `zimage validate`.
//
// Per op with reduction length K, n_r roundings to the storage precision u_s,
// accumulation in u_a, and a transcendental call in u_c:
//     eps(op) = n_r * u_s + sqrt(K) * u_a  (+ 4 * u_c if it calls exp/sin/...)
//     gate:   rel_rms <= eps  and  max_n <= 4 * eps
// A module that chains ops gets the sum of its ops' eps (first-order error
// propagation through well-conditioned steps); docs/tolerances.md lists the
// chains and the measured headroom.
//   T1: reference<float> vs reference<double>: budget = chain eps in fp32.
//   T2: reference vs a diffusers fp32 golden: T1 budget + the golden's own
//       fp32 error, which has the same size: 2 x chain eps.
//   T3: CUDA fp32 (TF32 and reduced-precision reductions off) vs the fp64
//       reference: the T1 budget (chain eps in fp32). Must fail with TF32 on.
//   T4: CUDA bf16 storage (fp32 accumulation) vs the fp64 reference: the chain
//       eps with u_s = bf16, u_a = fp32 (the absolute bound), and the peer rule
//       (passes_peer) against a same-precision peer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dit/config.h"
#include "vae/config.h"
#include "text_encoder/qwen3_config.h"

namespace zimage::numerics {

constexpr double kUnitRoundoffFp64 = 1.1e-16;
constexpr double kUnitRoundoffFp32 = 6.0e-8;
constexpr double kUnitRoundoffFp16 = 4.9e-4;  // also TF32
constexpr double kUnitRoundoffBf16 = 3.9e-3;

// One op of a module's chain.
struct Op {
  std::string name;
  int n_r = 1;                 // roundings to the storage dtype
  double K = 1;                // reduction length
  bool transcendental = false; // exp, sin, cos, tanh, rsqrt-as-call ...
};

double op_eps(const Op& op, double u_storage, double u_accum);

enum class Tier { T0, T1, T2, T3, T4 };
const char* tier_name(Tier t);

struct Budget {
  double rel_rms = 0;  // gate on rel_rms
  double max_n = 0;    // gate on max_n (4 x rel_rms)
  std::string chain;   // the ops the budget was derived from, for the log
};

// The op chain of a diffusers module, by its path ("layers.3.attention",
// "noise_refiner.0.feed_forward.w2", "t_embedder", "sample.0", ...).
// `seq_len` is the attention length L where it matters. Throws for a path
// this policy does not know: every comparison must have a derived budget.
std::vector<Op> module_ops(const std::string& path, const ZImageConfig& cfg, int64_t seq_len);
Budget budget_for(Tier tier, const std::vector<Op>& ops);
Budget module_budget(Tier tier, const std::string& path, const ZImageConfig& cfg, int64_t seq_len);

// The measurements of one comparison (candidate a, reference r, both in fp64).
struct Comparison {
  int64_t n = 0;
  int64_t nonfinite = 0;   // NaN/Inf in a where r is finite
  double rel_rms = 0;      // ||a - r|| / ||r||
  double max_n = 0;        // max |a - r| / rms(r)
  int64_t worst = -1;      // index of the worst element
  double worst_a = 0, worst_r = 0;
  double ref_rms = 0;
  int64_t mismatches = 0;  // T0: elements that differ at all
};

Comparison compare(const double* a, const double* r, int64_t n);
template <class A, class R>
Comparison compare(const Tensor<A>& a, const Tensor<R>& r) {
  ZIMAGE_CHECK(a.shape == r.shape, "compare: shape " + shape_str(a.shape) + " vs reference " + shape_str(r.shape));
  std::vector<double> da(a.data.begin(), a.data.end()), dr(r.data.begin(), r.data.end());
  return compare(da.data(), dr.data(), a.numel());
}

// ulp_max (the T0 rule of docs/tolerances.md) for elementwise fp32 ops: the largest distance in
// fp32 units in the last place between a and r, and where (NaN counts as far).
struct UlpDistance {
  int64_t max_ulp = 0;
  int64_t worst = -1;
  int64_t differ = 0;  // elements with a nonzero distance
};
UlpDistance ulp_distance(const Tensor<float>& a, const Tensor<float>& r);

bool passes(const Comparison& c, const Budget& b);  // nonfinite == 0 and both gates

// T4 peer rule (docs/tolerances.md, the FlashAttention rule): the candidate may be at
// most twice as far from the fp64 reference as a same-precision peer, plus a
// floor, on the max and on the RMS (both normalized by the same rms(ref)):
//   max_n(cand) <= 2 max_n(peer) + floor  and  rel_rms(cand) <= 2 rel_rms(peer) + floor
// and nonfinite == 0. Callers pass the fp32 (T3) rel_rms budget of the chain as
// the floor: what a correct fp32 computation may already differ by.
bool passes_peer(const Comparison& cand, const Comparison& peer, double floor);
std::string describe_peer(const Comparison& cand, const Comparison& peer, double floor);
bool passes_exact(const Comparison& c);              // T0: nonfinite == 0 and mismatches == 0

// "rel_rms 1.2e-07 max_n 3.4e-07 worst [17] 0.5123 vs 0.5124 budget 6.2e-06 (2% used)"
std::string describe(const Comparison& c, const Budget& b);
std::string describe_exact(const Comparison& c);
// Share of the budget used: max(rel_rms / b.rel_rms, max_n / b.max_n).
double budget_used(const Comparison& c, const Budget& b);

// ---------------------------------------------------------------- VAE (AutoencoderKL)
// Op chains of diffusers' AutoencoderKL modules (docs/vae.md), by path
// ("decoder.up_blocks.1.resnets.0", "decoder.mid_block.attentions.0.to_q",
// "post_quant_conv", ...) and the whole-model rows "decode", "tiled_decode",
// "encode.mean", "encode.logvar", "unscale". `in` is the module's input shape
// ([B, C, H, W]; the attention's group_norm [B, C, L]; its Linears [B, L, C]).
// K per op, derived from the layer:
//   conv:        K = C_in * kh * kw + 1 (the bias is one more term of the sum)
//   group_norm:  K = 2 * (C / G) * spatial (mean and variance over the group, as layer_norm)
//                + rsqrt, 3 roundings (subtract, scale, affine)
//   attention:   group_norm(C/G * L), linear(K = C) for q/k/v, q k^T (K = C),
//                softmax (K = L, exp), p v (K = L), linear(K = C), residual add
//   resnet:      group_norm, silu, conv(C_in*9), group_norm, silu, conv(C_out*9),
//                [conv_shortcut(C_in)], residual add
// Whole encoder / decoder chains walk the blocks with the spatial size of
// each stage (the decoder doubles it per upsampler, the encoder maps
// H -> (H - 2) / 2 + 1 per downsampler).
std::vector<Op> vae_module_ops(const std::string& path, const VaeConfig& cfg, const Shape& in);
Budget vae_module_budget(Tier tier, const std::string& path, const VaeConfig& cfg, const Shape& in);

// ---------------------------------------------------------------- Qwen3 text encoder
// Op chains of transformers' Qwen3Model modules (docs/text_encoder.md), by
// path ("layers.3.self_attn.q_norm", "layers.0.mlp", "norm", "embed_tokens",
// "rotary_emb.cos") and the whole-model rows "hidden_states.{k}" (k = 0..n,
// transformers' index after resolving negatives). L is the sequence length.
//   rms_norm:  K = C (or D for q_norm / k_norm), rsqrt, 3 roundings
//   attention: linear(K = C), rms_norm(D), rope (2 products + 1 add), q k^T (K = D),
//              softmax (K = L, exp), p v (K = L), o_proj linear(K = H*D)
//   mlp:       linear(K = C), silu, gate mul, down_proj linear(K = F)
//   layer:     rms_norm(C) + attention + residual + rms_norm(C) + mlp + residual
//   hidden_states.{k}: the embedding gather is exact; k layers' chains, plus
//              the final rms_norm for k = n.
//   rotary_emb.cos / .sin: the angle is the same fp32 number on both sides;
//              one cos/sin evaluation (transcendental) and one rounding.
std::vector<Op> text_encoder_module_ops(const std::string& path, const Qwen3Config& cfg, int64_t seq_len);
Budget text_encoder_module_budget(Tier tier, const std::string& path, const Qwen3Config& cfg, int64_t seq_len);

}  // namespace zimage::numerics
