#include "numerics/tolerance.h"

#include <cmath>
#include <cstring>
#include <cstdio>

namespace zimage::numerics {

double op_eps(const Op& op, double u_s, double u_a) {
  return op.n_r * u_s + std::sqrt(op.K) * u_a + (op.transcendental ? 4.0 * u_a : 0.0);
}

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::T0: return "T0";
    case Tier::T1: return "T1";
    case Tier::T2: return "T2";
    case Tier::T3: return "T3";
    case Tier::T4: return "T4";
  }
  return "?";
}

Budget budget_for(Tier tier, const std::vector<Op>& ops) {
  Budget b;
  double eps = 0;
  // T4: bf16 storage with fp32 accumulation; T1, T2, T3: fp32 throughout.
  const double u_storage = tier == Tier::T4 ? kUnitRoundoffBf16 : kUnitRoundoffFp32;
  for (const Op& op : ops) {
    eps += op_eps(op, u_storage, kUnitRoundoffFp32);
    b.chain += (b.chain.empty() ? "" : " + ") + op.name;
  }
  if (tier == Tier::T2) eps *= 2.0;  // our fp32 error + the golden's own fp32 error
  b.rel_rms = eps;
  b.max_n = 4.0 * eps;
  return b;
}

Comparison compare(const double* a, const double* r, int64_t n) {
  Comparison c;
  c.n = n;
  long double diff2 = 0, ref2 = 0;
  double max_abs = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) && std::isfinite(r[i])) {
      if (c.nonfinite++ == 0) c.worst = i, c.worst_a = a[i], c.worst_r = r[i];
      continue;
    }
    const double d = std::fabs(a[i] - r[i]);
    if (a[i] != r[i]) ++c.mismatches;
    diff2 += (long double)d * d;
    ref2 += (long double)r[i] * r[i];
    if (d > max_abs && c.nonfinite == 0) max_abs = d, c.worst = i, c.worst_a = a[i], c.worst_r = r[i];
  }
  c.ref_rms = n ? double(std::sqrt(ref2 / n)) : 0.0;
  c.rel_rms = ref2 > 0 ? double(std::sqrt(diff2 / ref2)) : (diff2 > 0 ? INFINITY : 0.0);
  c.max_n = c.ref_rms > 0 ? std::max(max_abs, 0.0) / c.ref_rms : (max_abs > 0 ? INFINITY : 0.0);
  return c;
}

namespace {
// Maps a float's bits to a monotonic integer line (-0 and +0 both 0).
int64_t ordered_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? -int64_t(i & 0x7fffffff) : int64_t(i);
}
}  // namespace

UlpDistance ulp_distance(const Tensor<float>& a, const Tensor<float>& r) {
  ZIMAGE_CHECK(a.shape == r.shape, "ulp_distance: shape " + shape_str(a.shape) + " vs " + shape_str(r.shape));
  UlpDistance u;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t d = std::isnan(a[i]) || std::isnan(r[i]) ? INT64_MAX : std::llabs(ordered_bits(a[i]) - ordered_bits(r[i]));
    if (d) ++u.differ;
    if (d > u.max_ulp) u.max_ulp = d, u.worst = i;
  }
  return u;
}

bool passes(const Comparison& c, const Budget& b) {
  return c.nonfinite == 0 && c.rel_rms <= b.rel_rms && c.max_n <= b.max_n;
}

bool passes_peer(const Comparison& cand, const Comparison& peer, double floor) {
  return cand.nonfinite == 0 && cand.max_n <= 2.0 * peer.max_n + floor && cand.rel_rms <= 2.0 * peer.rel_rms + floor;
}

std::string describe_peer(const Comparison& cand, const Comparison& peer, double floor) {
  char buf[400];
  const double lim_rms = 2.0 * peer.rel_rms + floor, lim_max = 2.0 * peer.max_n + floor;
  std::snprintf(buf, sizeof buf,
                "rel_rms %.3e max_n %.3e worst [%lld] %.7g vs %.7g nonfinite %lld | peer rel_rms %.3e max_n %.3e, "
                "floor %.3e -> limits %.3e / %.3e (%.1f%% used)",
                cand.rel_rms, cand.max_n, (long long)cand.worst, cand.worst_a, cand.worst_r, (long long)cand.nonfinite,
                peer.rel_rms, peer.max_n, floor, lim_rms, lim_max,
                100.0 * std::max(cand.rel_rms / lim_rms, cand.max_n / lim_max));
  return buf;
}

bool passes_exact(const Comparison& c) { return c.nonfinite == 0 && c.mismatches == 0; }

double budget_used(const Comparison& c, const Budget& b) {
  return std::max(c.rel_rms / b.rel_rms, c.max_n / b.max_n);
}

std::string describe(const Comparison& c, const Budget& b) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "rel_rms %.3e max_n %.3e worst [%lld] %.7g vs %.7g nonfinite %lld | budget rel_rms %.3e max_n %.3e "
                "(%.1f%% used)",
                c.rel_rms, c.max_n, (long long)c.worst, c.worst_a, c.worst_r, (long long)c.nonfinite, b.rel_rms,
                b.max_n, 100.0 * budget_used(c, b));
  return buf;
}

std::string describe_exact(const Comparison& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "exact: %lld of %lld elements differ, nonfinite %lld, worst [%lld] %.9g vs %.9g",
                (long long)c.mismatches, (long long)c.n, (long long)c.nonfinite, (long long)c.worst, c.worst_a,
                c.worst_r);
  return buf;
}

}  // namespace zimage::numerics
