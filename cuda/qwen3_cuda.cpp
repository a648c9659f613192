#include "qwen3_cuda.h"

#include <algorithm>
#include <cmath>

#include "io/safetensors.h"
#include "kernels/embedding.h"
#include "kernels/qwen3_qk_norm_rope.h"
#include "kernels/residual_add.h"
#include "kernels/rms_norm_modulate.h"
#include "kernels/swiglu.h"

namespace zimage::gpu {

namespace {

DeviceTensor up(const Tensor<float>& t, DType dt, Runtime& rt) { return upload(t, dt, rt.staging(), rt.stream()); }
void reserve(DeviceBuffer& b, int64_t elems, DType dt) { b.reserve(size_t(elems) * dtype_size(dt)); }

// Host -> device bytes on stream s (pageable source: the call returns once the bytes are staged).
void copy_up(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
}

// The checks of Qwen3TextEncoder::hidden_state and qwen3_embedding, with their messages.
void check_inputs(const Qwen3Config& cfg, const Tensor<int32_t>& ids, const Tensor<int32_t>& mask) {
  ZIMAGE_CHECK(ids.ndim() == 2 && mask.shape == ids.shape,
               "text encoder: input_ids " + shape_str(ids.shape) + " and attention_mask " + shape_str(mask.shape) +
                   " must both be [B, L]");
  for (int64_t n = 0; n < ids.numel(); ++n)
    ZIMAGE_CHECK(ids[n] >= 0 && ids[n] < cfg.vocab_size,
                 "embed_tokens: token id " + std::to_string(ids[n]) + " at flat index " + std::to_string(n) +
                     " is outside the vocabulary of " + std::to_string(cfg.vocab_size));
}

bool all_real(const Tensor<int32_t>& mask) {
  return std::all_of(mask.data.begin(), mask.data.end(), [](int32_t v) { return v != 0; });
}

}  // namespace

AttentionVariant qwen3_attention_variant(const Qwen3Config& cfg) {
  AttentionVariant v;
  v.kv_heads = cfg.num_key_value_heads;
  v.causal = true;
  v.zero_empty_rows = true;
  return v;
}

AttentionVersion check_qwen3_attention(const Qwen3Config& cfg, const Qwen3CudaOptions& opts) {
  const int64_t H = cfg.num_attention_heads, G = cfg.num_key_value_heads, D = cfg.head_dim;
  try {
    return resolve_attention(opts.attention, opts.dtype, D, (H + 2 * G) * D, H * D, true, qwen3_attention_variant(cfg), H);
  } catch (const Error& e) {
    throw Error(std::string("text encoder on CUDA: ") + e.what());
  }
}

DeviceQwen3Layer upload_qwen3_layer(const Qwen3LayerW<float>& w, DType dt, Runtime& rt) {
  refuse_fp16(dt);
  DeviceQwen3Layer d;
  d.qkv = upload_fused_linear({&w.self_attn.q_proj, &w.self_attn.k_proj, &w.self_attn.v_proj}, dt, rt);
  d.o_proj = upload_linear(w.self_attn.o_proj, dt, rt);
  d.gate_up = upload_fused_linear({&w.mlp.gate_proj, &w.mlp.up_proj}, dt, rt);
  d.down_proj = upload_linear(w.mlp.down_proj, dt, rt);
  d.input_layernorm = up(w.input_layernorm, dt, rt);
  d.post_attention_layernorm = up(w.post_attention_layernorm, dt, rt);
  d.q_norm = up(w.self_attn.q_norm, dt, rt);
  d.k_norm = up(w.self_attn.k_norm, dt, rt);
  return d;
}

void run_qwen3_layer(Runtime& rt, const DeviceQwen3Layer& w, const Qwen3Config& cfg, DType dt, void* x, int64_t B,
                     int64_t L, const int32_t* mask, const float* cos_sin, Qwen3Scratch& sc,
                     const Qwen3CudaOptions& opts) {
  const int64_t N = B * L, C = cfg.hidden_size, F = cfg.intermediate_size, H = cfg.num_attention_heads,
                G = cfg.num_key_value_heads, D = cfg.head_dim, Q = (H + 2 * G) * D;
  ZIMAGE_CHECK(w.qkv.out == Q && w.qkv.in == C && w.gate_up.out == 2 * F && w.gate_up.in == C && w.down_proj.in == F &&
                   w.down_proj.out == C && w.o_proj.in == H * D && w.o_proj.out == C &&
                   w.input_layernorm.numel() == C && w.post_attention_layernorm.numel() == C &&
                   w.q_norm.numel() == D && w.k_norm.numel() == D,
               "run_qwen3_layer: the uploaded layer does not match the config");
  const cudaStream_t s = rt.stream();
  const double eps = cfg.rms_norm_eps;
  reserve(sc.n, N * C, dt);
  reserve(sc.qkv, N * Q, dt);
  reserve(sc.o, N * H * D, dt);
  reserve(sc.branch, N * C, dt);
  reserve(sc.h13, N * 2 * F, dt);
  reserve(sc.g, N * F, dt);

  const DevRows xr{x, C, dt}, n{sc.n.get(), C, dt};
  const RowShape shape{N, L, C};
  // h = x + self_attn(input_layernorm(x))
  rms_norm_modulate(xr, w.input_layernorm.data(), {}, shape, eps, n, s);
  rt.linear({sc.n.get(), C, dt}, w.qkv.weight.data(), w.qkv.b(), {sc.qkv.get(), Q, dt}, {N, Q, C}, opts.gemm);
  // The fused qkv rows [N, Q = (H + 2G) D]: q at column 0, k at H D, v at (H + G) D.
  const DevRows q{sc.qkv.get(), Q, dt}, k = q.from_col(H * D), v = q.from_col((H + G) * D);
  qwen3_qk_norm_rope(q, k, {w.q_norm.data(), w.k_norm.data(), eps}, cos_sin, {B, L, H, D}, G, s);
  flash_attention(q, k, v, mask, {sc.o.get(), H * D, dt}, {B, L, H, D}, s, opts.attention, nullptr,
                  qwen3_attention_variant(cfg));
  rt.linear({sc.o.get(), H * D, dt}, w.o_proj.weight.data(), w.o_proj.b(), {sc.branch.get(), C, dt}, {N, C, H * D},
            opts.gemm);
  residual_add(dt, x, sc.branch.get(), N * C, s);
  // out = h + mlp(post_attention_layernorm(h))
  rms_norm_modulate(xr, w.post_attention_layernorm.data(), {}, shape, eps, n, s);
  rt.linear({sc.n.get(), C, dt}, w.gate_up.weight.data(), w.gate_up.b(), {sc.h13.get(), 2 * F, dt}, {N, 2 * F, C},
            opts.gemm);
  swiglu(dt, sc.h13.get(), N, F, sc.g.get(), s);
  rt.linear({sc.g.get(), F, dt}, w.down_proj.weight.data(), w.down_proj.b(), {sc.branch.get(), C, dt}, {N, C, F},
            opts.gemm);
  residual_add(dt, x, sc.branch.get(), N * C, s);
}

Tensor<float> qwen3_decoder_layer_cuda(const Qwen3LayerW<float>& w, const Qwen3Config& cfg, const Tensor<float>& x,
                                       const Tensor<int32_t>& pad_mask, const Qwen3CudaOptions& opts, Runtime& rt) {
  check_qwen3_attention(cfg, opts);
  const DType dt = opts.dtype;
  ZIMAGE_CHECK(x.ndim() == 3 && x.dim(2) == cfg.hidden_size && pad_mask.shape == Shape({x.dim(0), x.dim(1)}),
               "qwen3_decoder_layer_cuda: x " + shape_str(x.shape) + ", pad_mask " + shape_str(pad_mask.shape));
  const int64_t B = x.dim(0), L = x.dim(1);
  const DeviceQwen3Layer dw = upload_qwen3_layer(w, dt, rt);
  DeviceTensor xd = up(x, dt, rt);
  const Tensor<float> cs = qwen3_cos_sin_table(cfg, L);
  DeviceBuffer cs_d(size_t(cs.numel()) * sizeof(float));
  copy_up(cs_d.get(), cs.ptr(), size_t(cs.numel()) * sizeof(float), rt.stream());
  DeviceBuffer mask_d;
  if (!all_real(pad_mask)) {
    mask_d = DeviceBuffer(size_t(pad_mask.numel()) * sizeof(int32_t));
    copy_up(mask_d.get(), pad_mask.ptr(), size_t(pad_mask.numel()) * sizeof(int32_t), rt.stream());
  }
  Qwen3Scratch sc;
  run_qwen3_layer(rt, dw, cfg, dt, xd.data(), B, L, mask_d.as<const int32_t>(), cs_d.as<const float>(), sc, opts);
  Tensor<float> out = download(xd, rt.staging(), rt.stream());
  return out;
}

namespace {
// The hidden layer needing the most layers (hidden_states index n counts the norm too).
int deepest(const Qwen3Config& cfg, const std::vector<int>& ks) {
  ZIMAGE_CHECK(!ks.empty(), "text encoder on CUDA: no hidden layer asked for");
  int best = ks[0];
  for (int k : ks)
    if (qwen3_hidden_index(cfg, k) > qwen3_hidden_index(cfg, best)) best = k;
  return best;
}
}  // namespace

CudaQwen3::CudaQwen3(const Qwen3TextEncoder& te, const std::vector<int>& hidden_layers, const Qwen3CudaOptions& opts)
    : CudaQwen3(te, deepest(te.config(), hidden_layers), opts) {}

CudaQwen3::CudaQwen3(const Qwen3TextEncoder& te, int hidden_layer, const Qwen3CudaOptions& opts)
    : cfg_(te.config()), opts_(opts) {
  const MemoryScope scope("the text encoder (upload)");
  refuse_fp16(opts.dtype);
  const int idx = qwen3_hidden_index(cfg_, hidden_layer);  // one-line error for a bad index
  check_qwen3_attention(cfg_, opts_);
  rt_ = std::make_unique<Runtime>();
  const DType dt = opts_.dtype;
  const int64_t V = cfg_.vocab_size, C = cfg_.hidden_size;

  // embed_tokens in chunks of 64 MB of fp32 rows: the device staging (and, for a mapped file, the
  // host's converted copy) holds one chunk.
  embed_tokens_ = DeviceTensor(dt, {V, C});
  const int64_t chunk = std::max<int64_t>(1, (int64_t(64) << 20) / (C * 4));
  auto check_shape = [&](const Shape& s) {
    ZIMAGE_CHECK(s == Shape({V, C}), "text encoder: embed_tokens.weight " + shape_str(s) + " for vocab_size " +
                                         std::to_string(V) + " x hidden " + std::to_string(C));
  };
  auto upload_rows = [&](const Tensor<float>& rows, int64_t r0) {
    upload_into(rows, dt, offset(embed_tokens_.data(), r0 * C, dt), rt_->staging(), rt_->stream());
  };
  if (const TensorView* view = te.params().view("embed_tokens.weight")) {
    check_shape(view->shape);
    const size_t row_bytes = size_t(C) * dtype_size(view->dtype);
    for (int64_t r0 = 0; r0 < V; r0 += chunk) {
      TensorView part = *view;
      part.shape = {std::min(chunk, V - r0), C};
      part.data = view->data + size_t(r0) * row_bytes;
      part.nbytes = size_t(part.shape[0]) * row_bytes;
      upload_rows(to_tensor<float>(part), r0);
    }
  } else {  // a source that computes its values (synthetic weights): one host copy, the same chunks
    const Tensor<float> all = te.param<float>("embed_tokens.weight");
    check_shape(all.shape);
    for (int64_t r0 = 0; r0 < V; r0 += chunk) {
      const int64_t r = std::min(chunk, V - r0);
      upload_rows(Tensor<float>({r, C}, std::vector<float>(all.ptr() + r0 * C, all.ptr() + (r0 + r) * C)), r0);
    }
  }
  const int n = cfg_.num_hidden_layers;
  const int run = idx == n ? n : idx;
  for (int i = 0; i < run; ++i) layers_.push_back(upload_qwen3_layer(te.layer<float>(i), dt, *rt_));
  if (idx == n) norm_ = up(te.param<float>("norm.weight"), dt, *rt_);
  rt_->sync();
}

CudaQwen3::~CudaQwen3() {
  if (rt_) {
    try {
      rt_->sync();
    } catch (...) {
    }
  }
}

Tensor<float> CudaQwen3::hidden_state(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask, int k) {
  return std::move(hidden_states(ids, attention_mask, {k})[0]);
}

int CudaQwen3::check_hidden_layers(const std::vector<int>& ks) const {
  ZIMAGE_CHECK(!ks.empty(), "text encoder on CUDA: no hidden state requested");  // as the CPU's hidden_states
  const int n = cfg_.num_hidden_layers;
  int run = 0;
  for (int k : ks) {
    const int idx = qwen3_hidden_index(cfg_, k);
    const int needs = idx == n ? n : idx;
    ZIMAGE_CHECK(needs <= int(layers_.size()) && (idx != n || !norm_.empty()),
                 "text encoder on CUDA: hidden_states[" + std::to_string(k) + "] needs " + std::to_string(needs) +
                     " layers" + (idx == n ? " and the final norm" : "") + "; this model was built with " +
                     std::to_string(layers_.size()) + (norm_.empty() ? "" : " and the norm"));
    run = std::max(run, needs);
  }
  return run;
}

std::vector<Tensor<float>> CudaQwen3::hidden_states(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask,
                                                    const std::vector<int>& ks) {
  const MemoryScope scope("the text encoder (forward)");
  check_inputs(cfg_, ids, attention_mask);
  const int run = check_hidden_layers(ks);
  const int n = cfg_.num_hidden_layers;
  std::vector<int> idx;
  for (int k : ks) idx.push_back(qwen3_hidden_index(cfg_, k));
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt_->stream();
  const int64_t B = ids.dim(0), L = ids.dim(1), N = B * L, C = cfg_.hidden_size;
  std::vector<Tensor<float>> out(ks.size());
  if (N == 0) {
    for (auto& o : out) o = Tensor<float>({B, L, C});
    return out;
  }
  // Downloads every asked-for entry that is hidden_states[i] (i layers run).
  auto take = [&](int i, const DeviceTensor& x) {
    for (size_t j = 0; j < ks.size(); ++j)
      if (idx[j] == i && idx[j] != n) out[j] = download(x, rt_->staging(), s);
  };

  DeviceBuffer ids_d(size_t(N) * sizeof(int32_t), s);
  copy_up(ids_d.get(), ids.ptr(), size_t(N) * sizeof(int32_t), s);
  DeviceBuffer mask_d;
  if (!all_real(attention_mask)) {
    mask_d = DeviceBuffer(size_t(N) * sizeof(int32_t), s);
    copy_up(mask_d.get(), attention_mask.ptr(), size_t(N) * sizeof(int32_t), s);
  }
  DeviceTensor x(dt, {B, L, C}, s);
  embedding_gather(dt, ids_d.as<const int32_t>(), N, embed_tokens_.data(), C, x.data(), s);
  take(0, x);
  if (run > 0) {
    const Tensor<float> cs = qwen3_cos_sin_table(cfg_, L);
    DeviceBuffer cs_d(size_t(cs.numel()) * sizeof(float), s);
    copy_up(cs_d.get(), cs.ptr(), size_t(cs.numel()) * sizeof(float), s);
    for (int i = 0; i < run; ++i) {
      run_qwen3_layer(*rt_, layers_[size_t(i)], cfg_, dt, x.data(), B, L, mask_d.as<const int32_t>(),
                      cs_d.as<const float>(), scratch_, opts_);
      take(i + 1, x);
    }
    if (std::find(idx.begin(), idx.end(), n) != idx.end()) {
      DeviceTensor y(dt, {B, L, C}, s);
      rms_norm_modulate({x.data(), C, dt}, norm_.data(), {}, {N, L, C}, cfg_.rms_norm_eps, {y.data(), C, dt}, s);
      const Tensor<float> normed = download(y, rt_->staging(), s);
      for (size_t j = 0; j < ks.size(); ++j)
        if (idx[j] == n) out[j] = normed;
    }
  }
  return out;
}

TextEncoderBackend cuda_text_encoder(const Qwen3CudaOptions& opts) {
  return [opts](const Qwen3TextEncoder& te, const std::vector<int>& ks) -> PromptEncoder::HiddenStatesFn {
    auto model = std::make_shared<CudaQwen3>(te, ks, opts);
    return [model](const Tensor<int32_t>& ids, const Tensor<int32_t>& mask, const std::vector<int>& k) {
      return model->hidden_states(ids, mask, k);
    };
  };
}

}  // namespace zimage::gpu
