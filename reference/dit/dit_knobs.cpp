#include "dit/dit_knobs.h"

#include <algorithm>
#include <cmath>

#include "core/choices.h"
#include "core/error.h"
#include "dit/rope_limits.h"

namespace zimage {

namespace {
// The accepted words of --long-prompt-mode and --rope-scaling; None is no word's value.
constexpr ChoiceTable<LongPromptMode, 4> kLongPromptModes{{{LongPromptMode::Truncate, "truncate"},
                                                           {LongPromptMode::Interpolate, "interpolate"},
                                                           {LongPromptMode::Pool, "pool"},
                                                           {LongPromptMode::AttentionPool, "attention_pool"}}};
constexpr ChoiceTable<RopeScaling, 3> kRopeScalings{
    {{RopeScaling::Extrapolate, "extrapolate"}, {RopeScaling::Linear, "linear"}, {RopeScaling::Ntk, "ntk"}}};
}  // namespace

LongPromptMode parse_long_prompt_mode(const std::string& s) {
  return parse_choice(kLongPromptModes, s, "--long-prompt-mode");
}

std::string long_prompt_mode_name(LongPromptMode m) {
  return m == LongPromptMode::None ? "none" : choice_name(kLongPromptModes, m);
}

int64_t LongPromptOptions::target_for(const ZImageConfig& cfg) const {
  const int64_t n = target != 0 ? target : rope_limits(cfg).max_caption;
  ZIMAGE_CHECK(n > 0, "--long-prompt-target must be a positive number of tokens, not " + std::to_string(n));
  return n;
}

std::pair<int64_t, int64_t> pool_group(int64_t g, int64_t L, int64_t N) {
  // torch's start_index = floor(g L / N), end_index = ceil((g + 1) L / N), in integers.
  return {g * L / N, ((g + 1) * L + N - 1) / N};
}

template <class T>
std::vector<double> attention_pool_importance(const Tensor<T>& e) {
  const int64_t L = e.dim(0), C = e.dim(1);
  std::vector<double> norm(size_t(L), 0.0), imp(size_t(L), 0.0);
  for (int64_t i = 0; i < L; ++i) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += double(e[i * C + c]) * double(e[i * C + c]);
    norm[size_t(i)] = std::sqrt(s);
  }
  for (int64_t i = 0; i < L; ++i) {
    double sum = 0;
    int n = 0;
    for (int64_t j = std::max<int64_t>(0, i - 2); j <= std::min(L - 1, i + 2); ++j) {
      if (j == i) continue;
      const double d = norm[size_t(i)] * norm[size_t(j)];
      double dot = 0;
      for (int64_t c = 0; c < C; ++c) dot += double(e[i * C + c]) * double(e[j * C + c]);
      sum += d > 0 ? dot / d : 0.0;
      ++n;
    }
    imp[size_t(i)] = n == 0 ? 1.0 : std::max(0.0, 1.0 - sum / n);
  }
  return imp;
}

template <class T>
Tensor<T> fit_long_prompt(const Tensor<T>& e, LongPromptMode mode, int64_t N) {
  ZIMAGE_CHECK(N > 0, "--long-prompt-target must be a positive number of tokens, not " + std::to_string(N));
  const int64_t L = e.dim(0), C = e.dim(1);
  if (mode == LongPromptMode::None || L <= N) return e;
  Tensor<T> out({N, C});
  std::vector<double> acc(static_cast<size_t>(C), 0.0);
  switch (mode) {
    case LongPromptMode::None: break;
    case LongPromptMode::Truncate:
      std::copy(e.data.begin(), e.data.begin() + N * C, out.data.begin());
      break;
    case LongPromptMode::Interpolate: {
      const double scale = double(L) / double(N);
      for (int64_t j = 0; j < N; ++j) {
        const double src = std::max(0.0, (double(j) + 0.5) * scale - 0.5);
        const int64_t i0 = std::min(int64_t(std::floor(src)), L - 1), i1 = std::min(i0 + 1, L - 1);
        const double a = src - double(i0);
        for (int64_t c = 0; c < C; ++c)
          out[j * C + c] = T((1.0 - a) * double(e[i0 * C + c]) + a * double(e[i1 * C + c]));
      }
      break;
    }
    case LongPromptMode::Pool:
    case LongPromptMode::AttentionPool: {
      const std::vector<double> w = mode == LongPromptMode::AttentionPool ? attention_pool_importance(e)
                                                                          : std::vector<double>(size_t(L), 1.0);
      for (int64_t g = 0; g < N; ++g) {
        const auto [s, t] = pool_group(g, L, N);
        double ws = 0;
        for (int64_t i = s; i < t; ++i) ws += w[size_t(i)];
        const bool plain = !(ws > 0);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = s; i < t; ++i) {
          const double wi = plain ? 1.0 : w[size_t(i)];
          for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += wi * double(e[i * C + c]);
        }
        const double den = plain ? double(t - s) : ws;
        for (int64_t c = 0; c < C; ++c) out[g * C + c] = T(acc[size_t(c)] / den);
      }
      break;
    }
  }
  return out;
}

RopeScaling parse_rope_scaling(const std::string& s) { return parse_choice(kRopeScalings, s, "--rope-scaling"); }

std::string rope_scaling_name(RopeScaling s) { return s == RopeScaling::None ? "none" : choice_name(kRopeScalings, s); }

RopeItemScaling rope_item_scaling(const ZImageConfig& cfg, RopeScaling s, int64_t lc_pad) {
  RopeItemScaling r;
  for (size_t a = 0; a < 3; ++a) r.theta[a] = cfg.rope_theta;
  const int64_t P = rope_limits(cfg).max_padded_caption;
  if ((s != RopeScaling::Linear && s != RopeScaling::Ntk) || lc_pad <= P || P <= 0) return r;
  r.active = true;
  if (s == RopeScaling::Linear) {
    r.caption_num = P;
    r.caption_den = lc_pad;
    r.image_shift = P - lc_pad;  // Lc_pad + 1 + f -> P + 1 + f
  } else {
    const double d0 = cfg.axes_dims[0];
    r.theta[0] = cfg.rope_theta * std::pow(double(lc_pad) / double(P), d0 / (d0 - 2.0));
  }
  return r;
}

template <class T>
Tensor<T> rope_freqs_scaled(const std::vector<int>& axes_dims, const RopeItemScaling& sc, const Tensor<int32_t>& ids,
                            bool caption) {
  const int64_t N = ids.dim(0), n_axes = int64_t(axes_dims.size());
  ZIMAGE_CHECK(ids.dim(1) == n_axes && n_axes == 3, "rope_freqs_scaled: ids " + shape_str(ids.shape));
  std::vector<std::vector<double>> freqs(3);
  int64_t pairs = 0;
  for (size_t a = 0; a < 3; ++a) {
    const int d = axes_dims[a];
    for (int k = 0; k < d / 2; ++k) freqs[a].push_back(1.0 / std::pow(sc.theta[a], double(2 * k) / double(d)));
    pairs += d / 2;
  }
  Tensor<T> out({N, pairs, 2});
  for (int64_t n = 0; n < N; ++n) {
    T* dst = out.ptr() + n * pairs * 2;
    for (int64_t a = 0; a < 3; ++a) {
      const int64_t id = ids[n * 3 + a];
      double pos = double(id);
      if (a == 0) {
        if (caption)
          pos = double(id * sc.caption_num) / double(sc.caption_den);
        else if (id != 0)
          pos = double(id + sc.image_shift);
      }
      for (double f : freqs[size_t(a)]) {
        const float angle = float(pos * f);
        *dst++ = std::cos(T(angle));
        *dst++ = std::sin(T(angle));
      }
    }
  }
  return out;
}

#define ZIMAGE_KNOBS_INSTANTIATE(T)                                                                     \
  template std::vector<double> attention_pool_importance<T>(const Tensor<T>&);                          \
  template Tensor<T> fit_long_prompt<T>(const Tensor<T>&, LongPromptMode, int64_t);                     \
  template Tensor<T> rope_freqs_scaled<T>(const std::vector<int>&, const RopeItemScaling&, const Tensor<int32_t>&, \
                                          bool);
ZIMAGE_KNOBS_INSTANTIATE(float)
ZIMAGE_KNOBS_INSTANTIATE(double)
#undef ZIMAGE_KNOBS_INSTANTIATE

}  // namespace zimage
