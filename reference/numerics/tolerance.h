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

// The budget of a chain: the sum of its ops' eps at the tier's precisions
// (T2 doubled). Each model's module table (dit/, vae/, text_encoder/
// module_table.h) gives the chain of a module by its path; op builders are
// in numerics/op_chain.h.
Budget budget_for(Tier tier, const std::vector<Op>& ops);

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

}  // namespace zimage::numerics
