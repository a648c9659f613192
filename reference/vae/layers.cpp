// AutoencoderKL layers (see layers.h for the contract of each function).
#include "vae/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <omp.h>

#include "nn/linear.h"
#include "nn/softmax.h"
#include "vae/config.h"

namespace zimage {

namespace {

// Elementwise work below this many values runs on one thread: an OpenMP
// region costs more than it saves there, and far more when the machine is
// oversubscribed (a barrier waits for a descheduled thread). Results do not
// depend on it (no reduction is split between threads).
constexpr int64_t kParallelMin = 1 << 16;

// Fixed-order sum of f(p[i]) over i < n: blocks of 256; inside a block, 16
// lane sums (lane l takes i = l, l + 16, ... in order) added lane by lane;
// block sums added left to right (error ~ (16 + 16 + n/256) u instead of n u).
// Vectorizes: the lanes are one Eigen fixed-size array.
template <class T, class F>
T blocked_sum(const T* p, int64_t n, F f) {
  constexpr int64_t kBlock = 256, kLanes = kVmathBlock;
  using Lanes = Eigen::Array<T, kLanes, 1>;
  T total = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    Lanes acc = Lanes::Zero();
    int64_t i = b0;
    for (; i + kLanes <= b1; i += kLanes) acc += f(Lanes(Eigen::Map<const Lanes>(p + i)));
    T s = 0;
    for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
    for (; i < b1; ++i) s += f(Eigen::Array<T, 1, 1>::Constant(p[i]))(0);
    total += s;
  }
  return total;
}

// One im2col row (or a piece of one): d[t] for t < Wo = the (virtually
// upsampled) input row at ix = t * s + off, that is src[ix / up], and 0 where
// ix is outside [0, Win).
// Branch-free inner loops (the valid ox range is computed first); no integer
// division for up = 1 or 2.
template <class T>
void im2col_row(T* d, const T* src, int64_t Wo, int64_t Win, int64_t s, int64_t up, int64_t off) {
  int64_t lo, hi;
  if (s == 1) {
    lo = std::clamp(-off, int64_t(0), Wo);
    hi = std::clamp(Win - off, lo, Wo);
  } else {
    lo = std::min(Wo, off >= 0 ? int64_t(0) : (-off + s - 1) / s);
    hi = std::clamp(Win - 1 - off < 0 ? int64_t(0) : (Win - 1 - off) / s + 1, lo, Wo);
  }
  std::fill(d, d + lo, T(0));
  std::fill(d + hi, d + Wo, T(0));
  if (up == 1 && s == 1) {
    std::copy(src + lo + off, src + hi + off, d + lo);
  } else if (up == 1) {
    for (int64_t ox = lo; ox < hi; ++ox) d[ox] = src[ox * s + off];
  } else if (up == 2) {
    for (int64_t ox = lo; ox < hi; ++ox) d[ox] = src[(ox * s + off) >> 1];
  } else {
    for (int64_t ox = lo; ox < hi; ++ox) d[ox] = src[(ox * s + off) / up];
  }
}

// The im2col of one band of output rows, B[K, P] with row (ci, ky, kx) and
// column = output pixel (r0 + j / Wo, j % Wo), packed straight into the GEMM's
// panels (core/gemm.h GemmBlockPacker) and never materialized: for each row of
// B, the block's pixels (split where they cross to the next output row) are
// gathered from one input row into `line`, then copied panel by panel.
template <class T>
struct Im2colBand {
  const T* x;  // this batch item [C_in, H, W]
  int64_t H, W, Hin, Win, Wo, kh, kw, stride, up, pad_top, pad_left, r0;

  void pack(int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* bp) const {
    const int64_t NR = gemm_panel_width<T>(), khw = kh * kw;
    struct Segment {
      int64_t j, len, oy, ox0;  // block columns [j, j + len) = output row oy from column ox0
    };
    std::vector<Segment> seg;
    for (int64_t j = 0; j < nc;) {
      const int64_t ox0 = (j0 + j) % Wo, len = std::min(nc - j, Wo - ox0);
      seg.push_back({j, len, r0 + (j0 + j) / Wo, ox0});
      j += len;
    }
    std::vector<T> line(static_cast<size_t>(nc));
    int64_t ci = p0 / khw, ky = p0 % khw / kw, kx = p0 % kw;  // B's row p0 + p = (ci, ky, kx)
    for (int64_t p = 0; p < kc; ++p) {
      const T* plane = x + ci * H * W;
      for (const Segment& sg : seg) {
        const int64_t iy = sg.oy * stride + ky - pad_top;
        T* d = line.data() + sg.j;
        if (iy < 0 || iy >= Hin)
          std::fill(d, d + sg.len, T(0));
        else
          im2col_row(d, plane + (up == 1 ? iy : up == 2 ? iy >> 1 : iy / up) * W, sg.len, Win, stride, up,
                     sg.ox0 * stride + kx - pad_left);
      }
      for (int64_t q = 0; q * NR < nc; ++q) {
        T* dst = bp + q * NR * kc + p * NR;
        const int64_t cols = std::min(NR, nc - q * NR);
        std::copy(line.data() + q * NR, line.data() + q * NR + cols, dst);
        std::fill(dst + cols, dst + NR, T(0));
      }
      if (++kx == kw) {
        kx = 0;
        if (++ky == kh) ky = 0, ++ci;
      }
    }
  }
};

}  // namespace

template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Conv2dW<T>& w, const ConvGeom& g) {
  ZIMAGE_CHECK(x.ndim() == 4, "conv2d: input " + shape_str(x.shape) + " is not [B, C, H, W]");
  ZIMAGE_CHECK(w.weight.ndim() == 4, "conv2d: weight " + shape_str(w.weight.shape) + " is not [C_out, C_in, kh, kw]");
  const int64_t B = x.dim(0), Cin = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Cout = w.weight.dim(0), kh = w.weight.dim(2), kw = w.weight.dim(3);
  ZIMAGE_CHECK(w.weight.dim(1) == Cin, "conv2d: input has " + std::to_string(Cin) + " channels, weight " +
                                           shape_str(w.weight.shape) + " expects " + std::to_string(w.weight.dim(1)));
  ZIMAGE_CHECK(w.bias.numel() == 0 || w.bias.numel() == Cout, "conv2d: bias " + shape_str(w.bias.shape) + " for " +
                                                                  std::to_string(Cout) + " output channels");
  const int64_t up = g.upsample, s = g.stride;
  const int64_t Hin = H * up, Win = W * up;  // the (virtually) upsampled input
  ZIMAGE_CHECK(Hin + g.pad_top + g.pad_bottom >= kh && Win + g.pad_left + g.pad_right >= kw,
               "conv2d: input " + shape_str(x.shape) + " is smaller than the " + std::to_string(kh) + "x" +
                   std::to_string(kw) + " kernel");
  const int64_t Ho = (Hin + g.pad_top + g.pad_bottom - kh) / s + 1;
  const int64_t Wo = (Win + g.pad_left + g.pad_right - kw) / s + 1;
  const int64_t K = Cin * kh * kw, HWo = Ho * Wo, HWi = H * W;
  Tensor<T> out({B, Cout, Ho, Wo});

  int64_t band_rows = std::max<int64_t>(1, kConvBandPixels / Wo);
  // Fewer than two bands per thread: thinner bands. Band sizes never reach the
  // results (the GEMM's rounding depends on K only: docs/gemm.md).
  const int64_t tasks_wanted = 2 * int64_t(omp_get_max_threads());
  if (B * ((Ho + band_rows - 1) / band_rows) < tasks_wanted) {
    const int64_t per_item = (tasks_wanted + B - 1) / B;
    band_rows = std::max<int64_t>(1, std::min(band_rows, (Ho + per_item - 1) / per_item));
  }
  const int64_t bands = (Ho + band_rows - 1) / band_rows;
  const bool direct = kh == 1 && kw == 1 && s == 1 && up == 1 && g.pad_top == 0 && g.pad_left == 0 &&
                      g.pad_bottom == 0 && g.pad_right == 0;

  // Threads only for convs worth it (>= 2^24 multiply-adds); a smaller one runs serially.
  const bool parallel = B * bands > 1 && double(B) * double(Cout) * double(K) * double(HWo) >= double(1 << 24);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t task = 0; task < B * bands; ++task) {
    const int64_t b = task / bands, r0 = (task % bands) * band_rows;
    const int64_t rows = std::min(band_rows, Ho - r0), P = rows * Wo;
    const T* xb = x.ptr() + b * Cin * HWi;
    T* yb = out.ptr() + b * Cout * HWo + r0 * Wo;  // Y[C_out, P], row stride H_out * W_out
    if (direct) {  // a 1x1 conv reads the input rows as they are
      gemm_serial<T>(Cout, P, K, {w.weight.ptr(), K, 1}, {xb + r0 * Wo, HWi, 1}, yb, HWo);
    } else {
      const Im2colBand<T> band{xb, H, W, Hin, Win, Wo, kh, kw, s, up, g.pad_top, g.pad_left, r0};
      gemm_serial<T>(Cout, P, K, {w.weight.ptr(), K, 1},
                     GemmBlockPacker<T>([&band](int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* bp) {
                       band.pack(p0, kc, j0, nc, bp);
                     }),
                     yb, HWo);
    }
    if (w.bias.numel())
      for (int64_t co = 0; co < Cout; ++co)
        for (int64_t j = 0; j < P; ++j) yb[co * HWo + j] += w.bias[co];
  }
  return out;
}

template <class T>
void group_norm_(Tensor<T>& x, const GroupNormW<T>& w, int groups, double eps) {
  ZIMAGE_CHECK(x.ndim() >= 2, "group_norm: input " + shape_str(x.shape) + " is not [B, C, *]");
  const int64_t B = x.dim(0), C = x.dim(1), S = (B * C) != 0 ? x.numel() / (B * C) : 0;
  ZIMAGE_CHECK(groups > 0 && C % groups == 0,
               "group_norm: " + std::to_string(C) + " channels are not divisible into " + std::to_string(groups) + " groups");
  ZIMAGE_CHECK(w.weight.numel() == C && w.bias.numel() == C, "group_norm: weight " + shape_str(w.weight.shape) +
                                                                 " / bias " + shape_str(w.bias.shape) + " for " +
                                                                 std::to_string(C) + " channels");
  const int64_t Cg = C / groups, N = Cg * S;
  // The variance divisor: N (biased, as torch) or N - 1 under the mutation.
  const T divisor = mutated(Mutation::GroupNormUnbiased) ? T(N - 1) : T(N);
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelMin)
  for (int64_t bg = 0; bg < B * groups; ++bg) {
    T* base = x.ptr() + bg * N;  // channels of one group are contiguous in NCHW
    const T mean = blocked_sum(base, N, [](const auto& v) { return v; }) / T(N);
    const T var = blocked_sum(base, N, [mean](const auto& v) { return (v - mean).square(); }) / divisor;
    const T rstd = T(1) / std::sqrt(var + T(eps));
    const int64_t c0 = (bg % groups) * Cg;
    for (int64_t c = 0; c < Cg; ++c) {
      const T gw = w.weight[c0 + c], gb = w.bias[c0 + c];
      T* p = base + c * S;
      for (int64_t i = 0; i < S; ++i) p[i] = (p[i] - mean) * rstd * gw + gb;
    }
  }
}

template <class T>
Tensor<T> group_norm(const Tensor<T>& x, const GroupNormW<T>& w, int groups, double eps) {
  Tensor<T> y = x;
  group_norm_(y, w, groups, eps);
  return y;
}

template <class T>
void silu_(Tensor<T>& x) {
  silu_(x.ptr(), x.numel());
}

template <class T>
Tensor<T> resnet_block_2d(Tensor<T> x, const ResnetBlock2DW<T>& w, int groups, Activations<T>* acts,
                          const std::string& path) {
  Tensor<T> h = group_norm(x, w.norm1, groups, kVaeNormEps);
  record(acts, path + ".norm1", h);
  silu_(h);
  h = conv2d(h, w.conv1, ConvGeom::same3x3());
  record(acts, path + ".conv1", h);
  group_norm_(h, w.norm2, groups, kVaeNormEps);
  record(acts, path + ".norm2", h);
  silu_(h);
  h = conv2d(h, w.conv2, ConvGeom::same3x3());
  record(acts, path + ".conv2", h);
  if (w.conv_shortcut) {
    x = conv2d(x, *w.conv_shortcut, ConvGeom::pointwise());
    record(acts, path + ".conv_shortcut", x);
  }
  ZIMAGE_CHECK(x.shape == h.shape, path + ": residual " + shape_str(x.shape) + " vs " + shape_str(h.shape) +
                                       " (C_in != C_out needs conv_shortcut)");
  // (input_tensor + hidden_states) / output_scale_factor, the factor is 1.
  const int64_t n = h.numel();
  T* hp = h.ptr();
  const T* xp = x.ptr();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) hp[i] = xp[i] + hp[i];
  record(acts, path, h);
  return h;
}

template <class T>
Tensor<T> vae_attention(Tensor<T> x, const VaeAttentionW<T>& w, int groups, Activations<T>* acts,
                        const std::string& path) {
  ZIMAGE_CHECK(x.ndim() == 4, path + ": input " + shape_str(x.shape) + " is not [B, C, H, W]");
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  Tensor<T> h = group_norm(x.reshaped({B, C, L}), w.group_norm, groups, kVaeNormEps);
  record(acts, path + ".group_norm", h);
  // [B, C, L] -> [B, L, C]
  Tensor<T> t({B, L, C});
  for (int64_t b = 0; b < B; ++b) {
    ConstMatMap<T> src(h.ptr() + b * C * L, C, L);
    MatMap<T> dst(t.ptr() + b * L * C, L, C);
    dst = src.transpose();
  }
  h = Tensor<T>();
  const Tensor<T> q = linear(t, w.to_q), k = linear(t, w.to_k), v = linear(t, w.to_v);
  record(acts, path + ".to_q", q);
  record(acts, path + ".to_k", k);
  record(acts, path + ".to_v", v);
  // softmax(q k^T / sqrt(C)) v, one head, by blocks of query rows (never L x L at once).
  const T scale = T(1) / std::sqrt(T(C));
  const int64_t qblocks = (L + kAttnQueryBlock - 1) / kAttnQueryBlock;
#pragma omp parallel if (B * qblocks > 1)
  {
    MatrixRM<T> S;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < B * qblocks; ++task) {
      const int64_t b = task / qblocks, i0 = (task % qblocks) * kAttnQueryBlock;
      const int64_t rows = std::min(kAttnQueryBlock, L - i0);
      S.resize(rows, L);
      gemm_serial<T>(rows, L, C, {q.ptr() + (b * L + i0) * C, C, 1}, {k.ptr() + b * L * C, 1, C}, S.data(), L);
      S *= scale;
      for (int64_t i = 0; i < rows; ++i) masked_softmax_row(S.data() + i * L, L, [](int64_t) { return true; });
      // t is free now: reuse it for the output
      gemm_serial<T>(rows, C, L, {S.data(), L, 1}, {v.ptr() + b * L * C, C, 1}, t.ptr() + (b * L + i0) * C, C);
    }
  }
  const Tensor<T> o = linear(t, w.to_out);
  record(acts, path + ".to_out.0", o);
  // [B, L, C] -> [B, C, H, W], + residual, / rescale_output_factor (1).
  for (int64_t b = 0; b < B; ++b) {
    ConstMatMap<T> src(o.ptr() + b * L * C, L, C);
    MatMap<T> dst(x.ptr() + b * C * L, C, L);
    dst = src.transpose() + dst;
  }
  record(acts, path, x);
  return x;
}

template <class T>
Tensor<T> downsample_2d(const Tensor<T>& x, const Conv2dW<T>& conv, Activations<T>* acts, const std::string& path) {
  ZIMAGE_CHECK(x.ndim() == 4 && x.dim(2) >= 2 && x.dim(3) >= 2,
               path + ": input " + shape_str(x.shape) + " must be [B, C, H, W] with H, W >= 2");
  // F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv without padding: one zero row/column at the bottom/right.
  Tensor<T> y = conv2d(x, conv, ConvGeom{2, 0, 0, 1, 1, 1});
  record(acts, path + ".conv", y);
  record(acts, path, y);
  return y;
}

template <class T>
Tensor<T> upsample_2d(const Tensor<T>& x, const Conv2dW<T>& conv, Activations<T>* acts, const std::string& path) {
  Tensor<T> y = conv2d(x, conv, ConvGeom{1, 1, 1, 1, 1, 2});
  record(acts, path + ".conv", y);
  record(acts, path, y);
  return y;
}

template <class T>
Tensor<T> unet_mid_block_2d(Tensor<T> x, const UNetMidBlock2DW<T>& w, int groups, Activations<T>* acts,
                            const std::string& path) {
  ZIMAGE_CHECK(w.resnets.size() == 2, path + ": expected 2 resnets");
  x = resnet_block_2d(std::move(x), w.resnets[0], groups, acts, path + ".resnets.0");
  if (w.attention) x = vae_attention(std::move(x), *w.attention, groups, acts, path + ".attentions.0");
  x = resnet_block_2d(std::move(x), w.resnets[1], groups, acts, path + ".resnets.1");
  record(acts, path, x);
  return x;
}

template <class T>
Tensor<T> down_encoder_block_2d(Tensor<T> x, const DownEncoderBlock2DW<T>& w, int groups, Activations<T>* acts,
                                const std::string& path) {
  for (size_t j = 0; j < w.resnets.size(); ++j)
    x = resnet_block_2d(std::move(x), w.resnets[j], groups, acts, path + ".resnets." + std::to_string(j));
  if (w.downsampler) x = downsample_2d(x, *w.downsampler, acts, path + ".downsamplers.0");
  record(acts, path, x);
  return x;
}

template <class T>
Tensor<T> up_decoder_block_2d(Tensor<T> x, const UpDecoderBlock2DW<T>& w, int groups, Activations<T>* acts,
                              const std::string& path) {
  for (size_t j = 0; j < w.resnets.size(); ++j)
    x = resnet_block_2d(std::move(x), w.resnets[j], groups, acts, path + ".resnets." + std::to_string(j));
  if (w.upsampler) x = upsample_2d(x, *w.upsampler, acts, path + ".upsamplers.0");
  record(acts, path, x);
  return x;
}

#define ZIMAGE_VAE_LAYERS(T)                                                                                          \
  template Tensor<T> conv2d(const Tensor<T>&, const Conv2dW<T>&, const ConvGeom&);                                    \
  template void group_norm_(Tensor<T>&, const GroupNormW<T>&, int, double);                                           \
  template Tensor<T> group_norm(const Tensor<T>&, const GroupNormW<T>&, int, double);                                 \
  template void silu_(Tensor<T>&);                                                                                    \
  template Tensor<T> resnet_block_2d(Tensor<T>, const ResnetBlock2DW<T>&, int, Activations<T>*, const std::string&);  \
  template Tensor<T> vae_attention(Tensor<T>, const VaeAttentionW<T>&, int, Activations<T>*, const std::string&);     \
  template Tensor<T> downsample_2d(const Tensor<T>&, const Conv2dW<T>&, Activations<T>*, const std::string&);         \
  template Tensor<T> upsample_2d(const Tensor<T>&, const Conv2dW<T>&, Activations<T>*, const std::string&);           \
  template Tensor<T> unet_mid_block_2d(Tensor<T>, const UNetMidBlock2DW<T>&, int, Activations<T>*,                    \
                                       const std::string&);                                                           \
  template Tensor<T> down_encoder_block_2d(Tensor<T>, const DownEncoderBlock2DW<T>&, int, Activations<T>*,            \
                                           const std::string&);                                                       \
  template Tensor<T> up_decoder_block_2d(Tensor<T>, const UpDecoderBlock2DW<T>&, int, Activations<T>*,                \
                                         const std::string&);
ZIMAGE_VAE_LAYERS(float)
ZIMAGE_VAE_LAYERS(double)
#undef ZIMAGE_VAE_LAYERS

}  // namespace zimage
