// A kernel author's check, written the way a user of the installed reference writes it: their own
// attention (here a float, one-pass online-softmax loop, as a port to another stack would have),
// compared with the reference's scaled_dot_product_attention in fp64 under the project's tolerance
// policy (numerics::budget_for, the T1 chain budget of an fp32 path), headroom printed. A copy
// with a planted bug (the 1/sqrt(D) scale left out) must fail the same gate.
// Exit 0 when the good kernel passes and the buggy one fails; 1 otherwise.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "dit/attention.h"
#include "numerics/tolerance.h"

namespace {

using zimage::Tensor;

// q, k, v [B, L, H, D] -> [B, L, H, D], float, one pass over the keys with a running max.
Tensor<float> my_attention(const Tensor<float>& q, const Tensor<float>& k, const Tensor<float>& v, bool planted_bug) {
  const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), D = q.dim(3);
  const float scale = planted_bug ? 1.0f : 1.0f / std::sqrt(float(D));
  Tensor<float> out(q.shape);
  std::vector<float> acc(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        const float* qi = q.ptr() + ((b * L + i) * H + h) * D;
        float m = -std::numeric_limits<float>::infinity(), l = 0.f;
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t j = 0; j < L; ++j) {
          const float* kj = k.ptr() + ((b * L + j) * H + h) * D;
          const float* vj = v.ptr() + ((b * L + j) * H + h) * D;
          float s = 0.f;
          for (int64_t d = 0; d < D; ++d) s += qi[d] * kj[d];
          s *= scale;
          const float m_new = std::max(m, s), alpha = std::exp(m - m_new), p = std::exp(s - m_new);
          l = l * alpha + p;
          for (int64_t d = 0; d < D; ++d) acc[size_t(d)] = acc[size_t(d)] * alpha + p * vj[d];
          m = m_new;
        }
        for (int64_t d = 0; d < D; ++d) out[((b * L + i) * H + h) * D + d] = acc[size_t(d)] / l;
      }
  return out;
}

Tensor<float> randn(zimage::Shape shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  Tensor<float> t(std::move(shape));
  for (auto& x : t.data) x = float(nd(rng));
  return t;
}

}  // namespace

int main() {
  using namespace zimage;
  const int64_t B = 1, L = 257, H = 2, D = 64;
  const Tensor<float> q = randn({B, L, H, D}, 1), k = randn({B, L, H, D}, 2), v = randn({B, L, H, D}, 3);
  const Tensor<double> ref = scaled_dot_product_attention(q.cast<double>(), k.cast<double>(), v.cast<double>(), nullptr);
  const numerics::Budget budget = numerics::budget_for(
      numerics::Tier::T1, {{"q k^T", 1, double(D), false}, {"softmax", 2, double(L), true}, {"p v", 1, double(L), false}});
  const numerics::Comparison good = numerics::compare(my_attention(q, k, v, false), ref);
  const numerics::Comparison bad = numerics::compare(my_attention(q, k, v, true), ref);
  std::printf("my_attention (fp32) vs reference fp64, T1: %s\n", numerics::describe(good, budget).c_str());
  std::printf("my_attention with the scale left out, T1: %s\n", numerics::describe(bad, budget).c_str());
  const bool ok = numerics::passes(good, budget) && !numerics::passes(bad, budget);
  std::printf("%s\n", ok ? "consumer check: PASS (the kernel passes, the planted bug fails)" : "consumer check: FAIL");
  return ok ? 0 : 1;
}
