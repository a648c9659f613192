#include "pipeline/sweep.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace zimage {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

uint64_t seed_number(const std::string& v, const std::string& spec) {
  const bool digits = !v.empty() && v.size() <= 20 && v.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  char* end = nullptr;
  const unsigned long long x = digits ? std::strtoull(v.c_str(), &end, 10) : 0;
  ZIMAGE_CHECK(digits && errno == 0 && end == v.c_str() + v.size(),
               "--seeds: '" + v + "' in '" + spec + "' is not a non-negative integer below 2^64");
  return x;
}

}  // namespace

SweepAxis parse_sweep_axis(const std::string& spec) {
  const size_t eq = spec.find('=');
  ZIMAGE_CHECK(eq != std::string::npos, "--vary '" + spec + "': expected KNOB=V1,V2,... (e.g. shift=1,3,5)");
  SweepAxis a;
  a.knob = spec.substr(0, eq);
  ZIMAGE_CHECK(!a.knob.empty() && a.knob.rfind("--", 0) != 0,
               "--vary '" + spec + "': the knob is an option's name without '--', e.g. shift=1,3,5");
  const std::string list = spec.substr(eq + 1);
  ZIMAGE_CHECK(!list.empty(), "--vary '" + spec + "': no values (an empty grid)");
  a.values = split(list, list.find(';') != std::string::npos ? ';' : ',');
  for (size_t i = 0; i < a.values.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      ZIMAGE_CHECK(a.values[i] != a.values[j], "--vary '" + spec + "': value '" + a.values[i] + "' is repeated");
  return a;
}

std::vector<uint64_t> parse_seed_list(const std::string& spec) {
  ZIMAGE_CHECK(!spec.empty(), "--seeds is empty (an empty grid): give e.g. 0-3 or 1,5,9");
  std::vector<uint64_t> seeds;
  for (const std::string& item : split(spec, ',')) {
    ZIMAGE_CHECK(!item.empty(), "--seeds '" + spec + "': an empty item");
    const size_t dash = item.find('-');
    uint64_t lo = 0, hi = 0;
    if (dash == std::string::npos) {
      lo = hi = seed_number(item, spec);
    } else {
      lo = seed_number(item.substr(0, dash), spec);
      hi = seed_number(item.substr(dash + 1), spec);
      ZIMAGE_CHECK(lo <= hi, "--seeds '" + spec + "': the range " + item + " is reversed");
    }
    ZIMAGE_CHECK(hi - lo < 10000 && seeds.size() + (hi - lo) < 10000, "--seeds '" + spec + "': more than 10000 seeds");
    for (uint64_t s = lo;; ++s) {
      ZIMAGE_CHECK(std::find(seeds.begin(), seeds.end(), s) == seeds.end(),
                   "--seeds '" + spec + "': seed " + std::to_string(s) + " is repeated");
      seeds.push_back(s);
      if (s == hi) break;
    }
  }
  return seeds;
}

std::string SweepRow::label(const std::vector<SweepAxis>& axes) const {
  if (baseline()) return "baseline";
  std::string s;
  for (size_t i = 0; i < axes.size(); ++i) s += (i ? " " : "") + axes[i].knob + "=" + values.at(i);
  return s;
}

std::vector<SweepRow> sweep_rows(int prompts, const std::vector<SweepAxis>& axes) {
  ZIMAGE_CHECK(prompts > 0, "a sweep needs at least one --prompt");
  size_t combos = axes.empty() ? 0 : 1;
  for (const auto& a : axes) {
    ZIMAGE_CHECK(!a.values.empty(), "--vary " + a.knob + ": no values (an empty grid)");
    combos *= a.values.size();
    ZIMAGE_CHECK(combos * size_t(prompts) <= 100000, "the --vary values make more than 100000 rows");
  }
  std::vector<SweepRow> rows;
  for (int p = 0; p < prompts; ++p) {
    rows.push_back(SweepRow{p, {}});
    for (size_t c = 0; c < combos; ++c) {  // c in mixed radix, the last axis fastest
      SweepRow r{p, std::vector<std::string>(axes.size())};
      size_t rest = c;
      for (size_t i = axes.size(); i-- > 0;) {
        r.values[i] = axes[i].values[rest % axes[i].values.size()];
        rest /= axes[i].values.size();
      }
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

ImageStats image_stats(const Image8& img) {
  ZIMAGE_CHECK(img.channels == 3, "image_stats needs an RGB image");
  ImageStats s;
  const int64_t n = img.height * img.width;
  for (int c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i) sum += img.pixels[size_t(i * 3 + c)];
    s.mean[c] = n ? sum / double(n) : 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = img.pixels[size_t(i * 3 + c)] - s.mean[c];
      sq += d * d;
    }
    s.std[c] = n ? std::sqrt(sq / double(n)) : 0;
  }
  return s;
}

std::optional<double> mean_abs_diff(const Image8& a, const Image8& b) {
  if (a.height != b.height || a.width != b.width || a.channels != b.channels || a.pixels.empty()) return std::nullopt;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / double(a.pixels.size());
}

template <class T>
MeanStd mean_std(const Tensor<T>& t) {
  MeanStd m;
  const int64_t n = t.numel();
  if (!n) return m;
  for (int64_t i = 0; i < n; ++i) m.mean += double(t[i]);
  m.mean /= double(n);
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += (double(t[i]) - m.mean) * (double(t[i]) - m.mean);
  m.std = std::sqrt(sq / double(n));
  return m;
}

template <class T>
std::vector<double> token_mean(const Tensor<T>& t, int64_t rows) {
  ZIMAGE_CHECK(!t.shape.empty() && rows > 0, "token_mean needs rows");
  const int64_t C = t.shape.back();
  ZIMAGE_CHECK(C > 0 && rows * C <= t.numel(), "token_mean: " + std::to_string(rows) + " rows past the tensor");
  std::vector<double> m(size_t(C), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) m[size_t(c)] += double(t[r * C + c]);
  for (double& v : m) v /= double(rows);
  return m;
}

std::optional<double> cosine_similarity(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty()) return std::nullopt;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa == 0 || bb == 0) return std::nullopt;
  return ab / std::sqrt(aa * bb);
}

namespace {

template <class T>
class ProbedDit : public DitModel<T> {
 public:
  ProbedDit(std::unique_ptr<DitModel<T>> inner, CaptionProbe* probe) : inner_(std::move(inner)), probe_(probe) {}
  const ZImageConfig& config() const override { return inner_->config(); }
  std::string weights() const override { return inner_->weights(); }
  void set_forward_options(const ForwardOptions& o) override {
    inner_->set_forward_options(o);
    skip_refiner_ = o.skip_context_refiner;
  }
  std::vector<Tensor<T>> forward(const DitInputs<T>& in, Activations<T>* acts) const override {
    if (done_ || in.cap_feats.empty()) return inner_->forward(in, acts);
    done_ = true;
    const int n_refiner = config().n_refiner_layers;
    const std::string refined = skip_refiner_ || n_refiner == 0 ? "cap_embedder" : "context_refiner." + std::to_string(n_refiner - 1);
    Activations<T> mine;
    mine.keep = {refined};
    if (acts) mine.check_finite = acts->check_finite;
    std::vector<Tensor<T>> out = inner_->forward(in, &mine);
    if (acts && !acts->first_nonfinite) acts->first_nonfinite = mine.first_nonfinite;
    const Tensor<T>& cap = in.cap_feats[0];
    probe_->tokens = cap.dim(0);
    probe_->embedding = token_mean(cap, cap.dim(0));
    const auto it = mine.find(refined);
    if (it != mine.end()) probe_->refined = token_mean(it->second, cap.dim(0));
    return out;
  }

 private:
  std::unique_ptr<DitModel<T>> inner_;
  CaptionProbe* probe_;
  bool skip_refiner_ = false;
  mutable bool done_ = false;
};

}  // namespace

template <class T>
std::unique_ptr<DitModel<T>> probe_captions(std::unique_ptr<DitModel<T>> inner, CaptionProbe* probe) {
  return std::make_unique<ProbedDit<T>>(std::move(inner), probe);
}

#define ZIMAGE_SWEEP_INSTANTIATE(T)                                                                      \
  template MeanStd mean_std<T>(const Tensor<T>&);                                                       \
  template std::vector<double> token_mean<T>(const Tensor<T>&, int64_t);                                \
  template std::unique_ptr<DitModel<T>> probe_captions<T>(std::unique_ptr<DitModel<T>>, CaptionProbe*);
ZIMAGE_SWEEP_INSTANTIATE(float)
ZIMAGE_SWEEP_INSTANTIATE(double)

}  // namespace zimage
