#include "forward.h"

#include <algorithm>

#include "kernels/final_layer_norm.h"
#include "kernels/gated_residual.h"
#include "kernels/patchify.h"
#include "kernels/qk_norm_rope.h"
#include "kernels/rms_norm_modulate.h"
#include "kernels/rope_gather.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"
#include "dit/rope_limits.h"
#include "dit/attention.h"    // kQkNormEps
#include "dit/final_layer.h"  // kFinalNormEps
#include "attention_cudnn.h"  // cudnn_workspace_generation
#include "weight_layout.h"
#include "dit/model_folder.h"

namespace zimage::gpu {

namespace {


DeviceTensor up(const Tensor<float>& t, DType dt, Runtime& rt) { return upload(t, dt, rt.staging(), rt.stream()); }

void reserve(DeviceBuffer& b, int64_t elems, DType dt) { b.reserve(size_t(elems) * dtype_size(dt)); }

// The device int32 key mask [B, L] into m (grown as needed) when item lengths differ (reference
// key_mask): returns true; false, m untouched, when they are all equal.
bool upload_mask_into(const std::vector<int64_t>& seqlens, cudaStream_t s, DeviceBuffer& m) {
  const std::optional<KeyMask> km = key_mask(seqlens);
  if (!km) return false;
  m.reserve(size_t(km->numel()) * sizeof(int32_t));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(m.get(), km->ptr(), size_t(km->numel()) * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(s));
  return true;
}

// One token stream on the device (image, caption, or both unified): CudaModel::Stream. Its buffers
// are the model's, kept from step to step (a CUDA graph of the step points into them); what
// depends on the shapes only is rebuilt when they change (ShapeMemo).
struct StreamState {
  DeviceTensor feats;         // [B, L, C] in the storage dtype
  DeviceBuffer freqs;         // [B, L, D/2, 2] fp32
  std::vector<int64_t> lens;  // item lengths (each padded to a multiple of 32)
  int64_t L = 0;              // the longest
  DeviceBuffer mask;          // key mask [B, L] when the lengths differ (masked)
  bool masked = false;
  ShapeMemo freqs_memo, mask_memo;
  const int32_t* mask_ptr() const { return masked ? mask.as<const int32_t>() : nullptr; }
};

// st.mask and st.masked for st.lens, uploaded only when the lengths changed since the last step.
void refresh_mask(StreamState& st, cudaStream_t s) {
  st.mask_memo.refresh(GraphKey().add(st.lens), [&] { st.masked = upload_mask_into(st.lens, s, st.mask); });
}

// t as a [shape] tensor of dt, its buffer kept (grown when too small): the forward's persistent
// buffers, whose addresses a CUDA graph of the step keeps (step_graph.h).
void shape_into(DeviceTensor& t, DType dt, Shape shape) {
  t.dtype = dt;
  t.shape = std::move(shape);
  t.buf.reserve(size_t(shape_numel(t.shape)) * dtype_size(dt));
}

// The fp32 RoPE tables of precompute_freqs_cis<float> for table lengths `lens`, concatenated, into
// buf (grown as needed); their layout into axes.
void upload_rope_tables(const ZImageConfig& cfg, const std::vector<int>& lens, cudaStream_t s, DeviceBuffer& buf,
                        RopeAxes& axes) {
  const std::vector<Tensor<float>> tables = precompute_freqs_cis<float>(cfg.axes_dims, lens, cfg.rope_theta);
  ZIMAGE_CHECK(tables.size() == 3, "CUDA forward: RoPE needs 3 axes, the config has " + std::to_string(tables.size()));
  axes = RopeAxes{};
  axes.n_axes = 3;
  std::vector<float> all;
  for (size_t a = 0; a < 3; ++a) {
    axes.offset[a] = int64_t(all.size());
    axes.len[a] = int(tables[a].dim(0));
    axes.pairs[a] = int(tables[a].dim(1));
    all.insert(all.end(), tables[a].data.begin(), tables[a].data.end());
  }
  buf.reserve(all.size() * sizeof(float));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(buf.get(), all.data(), all.size() * sizeof(float), cudaMemcpyHostToDevice, s));
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(s));
}

// The first `rows` rows of ids [n, 3] as a flat vector.
std::vector<int32_t> id_rows(const Tensor<int32_t>& ids, int64_t rows) {
  rows = std::min(rows, ids.dim(0));
  return std::vector<int32_t>(ids.data.begin(), ids.data.begin() + rows * 3);
}

}  // namespace

DeviceLinear upload_linear(const LinearW<float>& l, DType dt, Runtime& rt) {
  DeviceLinear d;
  d.out = l.weight.dim(0);
  d.in = l.weight.dim(1);
  d.weight = up(l.weight, dt, rt);
  if (l.has_bias()) d.bias = up(l.bias, dt, rt);
  return d;
}

DeviceLinear upload_fused_linear(const std::vector<const LinearW<float>*>& ls, DType dt, Runtime& rt) {
  std::vector<const Tensor<float>*> ws, bs;
  for (const LinearW<float>* l : ls) {
    ws.push_back(&l->weight);
    if (l->has_bias()) bs.push_back(&l->bias);
  }
  ZIMAGE_CHECK(bs.empty() || bs.size() == ls.size(), "upload_fused_linear: some of the fused Linears have a bias, some not");
  const Tensor<float> cat = concat_linear_weights(ws);
  DeviceLinear d;
  d.out = cat.dim(0);
  d.in = cat.dim(1);
  d.weight = up(cat, dt, rt);
  if (!bs.empty()) {
    Tensor<float> bias({d.out});
    int64_t at = 0;
    for (const Tensor<float>* b : bs) {
      std::copy(b->data.begin(), b->data.end(), bias.ptr() + at);
      at += b->numel();
    }
    ZIMAGE_CHECK(at == d.out, "upload_fused_linear: bias sizes do not match the weights");
    d.bias = up(bias, dt, rt);
  }
  return d;
}

void refuse_fp16(DType dt) {
  if (dt == DType::F16)
    throw Error(
        "--dtype float16 is refused on CUDA: Z-Image overflows fp16 (the FFN w2 input and the attention output "
        "exceed 65504 at real activation magnitudes); use --dtype bfloat16 or float32 (docs/cuda.md)");
}

DeviceBlock upload_block(const TransformerBlockW<float>& w, DType dt, Runtime& rt) {
  refuse_fp16(dt);
  DeviceBlock b;
  ZIMAGE_CHECK(!w.attention.to_q.has_bias() && !w.attention.to_k.has_bias() && !w.attention.to_v.has_bias() &&
                   !w.feed_forward.w1.has_bias() && !w.feed_forward.w3.has_bias(),
               "upload_block: the fused to_qkv / w13 GEMMs assume bias-free Linears (as in Z-Image)");
  b.to_qkv = upload_fused_linear({&w.attention.to_q, &w.attention.to_k, &w.attention.to_v}, dt, rt);
  b.to_out = upload_linear(w.attention.to_out, dt, rt);
  b.w13 = upload_fused_linear({&w.feed_forward.w1, &w.feed_forward.w3}, dt, rt);
  b.w2 = upload_linear(w.feed_forward.w2, dt, rt);
  if (w.attention.norm_q.numel()) {
    b.norm_q = up(w.attention.norm_q, dt, rt);
    b.norm_k = up(w.attention.norm_k, dt, rt);
  }
  b.attention_norm1 = up(w.attention_norm1, dt, rt);
  b.attention_norm2 = up(w.attention_norm2, dt, rt);
  b.ffn_norm1 = up(w.ffn_norm1, dt, rt);
  b.ffn_norm2 = up(w.ffn_norm2, dt, rt);
  b.modulation = w.modulation;
  if (w.modulation) b.adaLN_modulation = upload_linear(w.adaLN_modulation, dt, rt);
  b.C = w.attention.to_q.weight.dim(0);
  b.F = w.feed_forward.w1.weight.dim(0);
  return b;
}

void reserve_block_scratch(BlockScratch& sc, DType dt, int64_t rows, int64_t B, int64_t C, int64_t F) {
  reserve(sc.h, rows * C, dt);
  reserve(sc.qkv, rows * 3 * C, dt);
  reserve(sc.o, rows * C, dt);
  reserve(sc.a, rows * C, dt);
  reserve(sc.h13, rows * 2 * F, dt);
  reserve(sc.g, rows * F, dt);
  reserve(sc.mod[0], B * 4 * C, dt);
  reserve(sc.mod[1], B * 4 * C, dt);
}

void run_blocks(Runtime& rt, const DeviceBlock* blocks, size_t n, DType dt, const BlockStream& in, int n_heads,
                double norm_eps, BlockScratch& sc, const CudaOptions& opts) {
  if (n == 0) return;
  const int64_t B = in.B, L = in.L, rows = B * L, C = blocks[0].C, H = n_heads, D = C / H;
  ZIMAGE_CHECK(H * D == C, "run_blocks: dim " + std::to_string(C) + " is not n_heads x head_dim");
  int64_t F = 0;
  for (size_t k = 0; k < n; ++k) {
    ZIMAGE_CHECK(blocks[k].C == C, "run_blocks: blocks of different widths in one stack");
    ZIMAGE_CHECK(!blocks[k].modulation || in.adaln != nullptr, "run_blocks: modulated block needs adaln_input");
    F = std::max(F, blocks[k].F);
  }
  const cudaStream_t s = rt.stream();
  reserve_block_scratch(sc, dt, rows, B, C, F);
  // Block k's modulation rows [B, 4C] (scale_msa, gate_msa, scale_mlp, gate_mlp; no SiLU before
  // the Linear) go to mod[k % 2], made before block k - 1's last kernel needs its scale_msa.
  auto modulation = [&](size_t k) -> const void* {
    const DeviceBlock& w = blocks[k];
    if (!w.modulation) return nullptr;
    void* m = sc.mod[k % 2].get();
    const int64_t A = w.adaLN_modulation.in;
    rt.linear({in.adaln, A, dt}, w.adaLN_modulation.weight.data(), w.adaLN_modulation.b(), {m, 4 * C, dt},
              {B, 4 * C, A}, opts.gemm);
    return m;
  };
  // Chunk j of a block's modulation rows (absent: none).
  auto chunk = [&](const void* mod, int j) {
    return mod ? ConstDevRows(offset(mod, j * C, dt), 4 * C, dt) : ConstDevRows();
  };
  void* qkv = sc.qkv.get();
  const DevRows xr{in.x, C, dt}, h{sc.h.get(), C, dt}, qkv_rows{qkv, 3 * C, dt}, o{sc.o.get(), C, dt}, a{sc.a.get(), C, dt};
  const RowShape shape{rows, L, C};

  // The step profile's parts (step_profile.h) of the kernels below; nothing when it is off.
  auto part = [&](StepProfile::Part p) { return ProfileScope(&rt.profile(), p, s); };
  const void* mod = modulation(0);
  {
    const ProfileScope scope = part(StepProfile::kNorms);
    rms_norm_modulate(xr, blocks[0].attention_norm1.data(), chunk(mod, 0), shape, norm_eps, h, s);
  }
  for (size_t k = 0; k < n; ++k) {
    const DeviceBlock& w = blocks[k];
    const int64_t Fk = w.F;
    // h = attention_norm1(x) * (1 + scale_msa) is ready (the previous kernel wrote it).
    rt.linear({sc.h.get(), C, dt}, w.to_qkv.weight.data(), nullptr, {qkv, 3 * C, dt}, {rows, 3 * C, C}, opts.gemm);
    {
      const ProfileScope scope = part(StepProfile::kQkNormRope);
      const QkNorm norm{w.norm_q.empty() ? nullptr : w.norm_q.data(), w.norm_k.empty() ? nullptr : w.norm_k.data(),
                        kQkNormEps};
      qk_norm_rope(qkv_rows, qkv_rows.from_col(C), norm, in.freqs, {B, L, H, D}, s);
    }
    {
      const ProfileScope scope = part(StepProfile::kAttention);
      flash_attention(qkv_rows, qkv_rows.from_col(C), qkv_rows.from_col(2 * C), in.mask, o, {B, L, H, D}, s,
                      opts.attention, in.seqlens);
    }
    rt.linear({sc.o.get(), C, dt}, w.to_out.weight.data(), w.to_out.b(), {sc.a.get(), C, dt}, {rows, C, C}, opts.gemm);
    // x += tanh(gate_msa) attention_norm2(a); h = ffn_norm1(x) * (1 + scale_mlp)
    {
      const ProfileScope scope = part(StepProfile::kNorms);
      gated_residual_rms_norm(xr, a, {w.attention_norm2.data(), chunk(mod, 1), norm_eps},
                              {w.ffn_norm1.data(), chunk(mod, 2), norm_eps}, h, shape, s);
    }
    rt.linear({sc.h.get(), C, dt}, w.w13.weight.data(), nullptr, {sc.h13.get(), 2 * Fk, dt}, {rows, 2 * Fk, C},
              opts.gemm);
    {
      const ProfileScope scope = part(StepProfile::kSwiglu);
      swiglu(dt, sc.h13.get(), rows, Fk, sc.g.get(), s);
    }
    rt.linear({sc.g.get(), Fk, dt}, w.w2.weight.data(), w.w2.b(), {sc.a.get(), C, dt}, {rows, C, Fk}, opts.gemm);
    const RowNorm ffn_post{w.ffn_norm2.data(), chunk(mod, 3), norm_eps};
    if (k + 1 == n) {
      const ProfileScope scope = part(StepProfile::kNorms);
      gated_residual(xr, a, ffn_post.weight, ffn_post.mod, shape, norm_eps, s);
      break;
    }
    // x += tanh(gate_mlp) ffn_norm2(a); h = next block's attention_norm1(x) * (1 + its scale_msa)
    const void* next = modulation(k + 1);
    const ProfileScope scope = part(StepProfile::kNorms);
    gated_residual_rms_norm(xr, a, ffn_post, {blocks[k + 1].attention_norm1.data(), chunk(next, 0), norm_eps}, h, shape,
                            s);
    mod = next;
  }
}

void run_block(Runtime& rt, const DeviceBlock& w, DType dt, void* x, int64_t B, int64_t L, const int32_t* mask,
               const std::vector<int64_t>* seqlens, const float* freqs, const void* adaln, int n_heads, double norm_eps,
               BlockScratch& sc, const CudaOptions& opts) {
  run_blocks(rt, &w, 1, dt, {x, B, L, mask, seqlens, freqs, adaln}, n_heads, norm_eps, sc, opts);
}

Tensor<float> transformer_block_cuda(const TransformerBlockW<float>& w, const Tensor<float>& x, const KeyMask* mask,
                                     const Tensor<float>& freqs, const Tensor<float>* adaln, int n_heads,
                                     double norm_eps, const CudaOptions& opts, Runtime& rt) {
  const DType dt = opts.dtype;
  const int64_t B = x.dim(0), L = x.dim(1);
  ZIMAGE_CHECK(freqs.numel() == B * L * (x.dim(2) / n_heads), "transformer_block_cuda: freqs " + shape_str(freqs.shape) +
                                                                  " for x " + shape_str(x.shape));
  const DeviceBlock dw = upload_block(w, dt, rt);
  DeviceTensor xd = up(x, dt, rt);
  DeviceTensor fd = up(freqs, DType::F32, rt);
  DeviceTensor ad;
  if (adaln) ad = up(*adaln, dt, rt);
  DeviceBuffer md;
  if (mask) {
    md = DeviceBuffer(size_t(mask->numel()) * sizeof(int32_t));
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(md.get(), mask->ptr(), size_t(mask->numel()) * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, rt.stream()));
  }
  // The item lengths behind a prefix key mask (what cudnn needs); nullptr for any other mask.
  std::vector<int64_t> lens;
  bool prefix = mask != nullptr;
  for (int64_t b = 0; prefix && b < B; ++b) {
    int64_t n = 0;
    while (n < L && (*mask)[b * L + n] != 0) ++n;
    for (int64_t j = n; j < L; ++j) prefix = prefix && (*mask)[b * L + j] == 0;
    lens.push_back(n);
  }
  BlockScratch sc;
  run_block(rt, dw, dt, xd.data(), B, L, mask ? md.as<const int32_t>() : nullptr, prefix ? &lens : nullptr,
            fd.buf.as<const float>(),
            adaln ? ad.data() : nullptr, n_heads, norm_eps, sc, opts);
  return download(xd, rt.staging(), rt.stream());
}

// ---------------------------------------------------------------- CudaModel

struct CudaModel::Stream : StreamState {};

void check_attention_config(const ZImageConfig& cfg, const CudaOptions& opts) {
  const int64_t C = cfg.dim, H = cfg.n_heads;
  ZIMAGE_CHECK(H > 0 && C % H == 0, "CUDA model: dim " + std::to_string(C) + " is not a multiple of n_heads " +
                                        std::to_string(H));
  try {
    resolve_attention(opts.attention, opts.dtype, C / H, 3 * C, C);
  } catch (const Error& e) {
    throw Error(std::string("CUDA model: config head_dim ") + std::to_string(C / H) + " (dim " + std::to_string(C) +
                " / n_heads " + std::to_string(H) + "): " + e.what());
  }
}

CudaModel::CudaModel(const ZImageWeights<float>& w, const CudaOptions& opts) : cfg_(w.config), opts_(opts) {
  const MemoryScope scope("the transformer (upload)");
  refuse_fp16(opts.dtype);
  check_attention_config(cfg_, opts_);
  rt_ = std::make_unique<Runtime>();
  make_step_state();
  upload_shared(w);
  for (const auto& b : w.noise_refiner) noise_refiner_.push_back(upload_block(b, opts.dtype, *rt_));
  for (const auto& b : w.context_refiner) context_refiner_.push_back(upload_block(b, opts.dtype, *rt_));
  for (const auto& b : w.layers) layers_.push_back(upload_block(b, opts.dtype, *rt_));
}

CudaModel::CudaModel(const ZImageConfig& cfg, const ParamSource& src, const CudaOptions& opts) : cfg_(cfg), opts_(opts) {
  const MemoryScope scope("the transformer (upload)");
  refuse_fp16(opts.dtype);
  check_attention_config(cfg_, opts_);
  check_complete(src, expected_parameter_shapes(cfg));
  rt_ = std::make_unique<Runtime>();
  make_step_state();
  upload_shared(load_shared_weights<float>(cfg, src));
  auto stack = [&](const std::string& name, int n, bool modulation, std::vector<DeviceBlock>& out) {
    for (int i = 0; i < n; ++i)
      out.push_back(upload_block(load_block<float>(src, name + "." + std::to_string(i), modulation, cfg.qk_norm),
                                 opts.dtype, *rt_));
  };
  stack("noise_refiner", cfg.n_refiner_layers, true, noise_refiner_);
  stack("context_refiner", cfg.n_refiner_layers, false, context_refiner_);
  stack("layers", cfg.n_layers, true, layers_);
}

CudaModel::~CudaModel() = default;

void CudaModel::make_step_state() {
  x_ = std::make_unique<Stream>();
  cap_ = std::make_unique<Stream>();
  u_ = std::make_unique<Stream>();
  graphs_ = std::make_unique<StepGraphs>();
}

void CudaModel::set_attention(AttentionVersion v) {
  CudaOptions o = opts_;
  o.attention = v;
  check_attention_config(cfg_, o);
  opts_ = o;
}

void CudaModel::upload_shared(const ZImageWeights<float>& w) {
  const DType dt = opts_.dtype;
  t_mlp0_ = upload_linear(w.t_embedder.mlp0, dt, *rt_);
  t_mlp2_ = upload_linear(w.t_embedder.mlp2, dt, *rt_);
  cap_norm_ = up(w.cap_embedder_norm, dt, *rt_);
  cap_linear_ = upload_linear(w.cap_embedder_linear, dt, *rt_);
  x_embedder_ = upload_linear(w.x_embedder, dt, *rt_);
  final_linear_ = upload_linear(w.final_layer.linear, dt, *rt_);
  final_adaln_ = upload_linear(w.final_layer.adaLN_modulation, dt, *rt_);
  x_pad_token_ = up(w.x_pad_token, dt, *rt_);
  cap_pad_token_ = up(w.cap_pad_token, dt, *rt_);
}

// Twin: reference/dit/timestep_embedder.h timestep_embedder on t * t_scale (the fp32 product
// on the host, as reference<float> computes it) -> adaln_input [B, A].
const DeviceTensor& CudaModel::timestep_embedder(const Tensor<float>& t_in) {
  Runtime& rt = *rt_;
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt.stream();
  const int64_t B = t_in.numel(), A = t_mlp2_.out;
  Tensor<float> t = t_in;
  for (auto& v : t.data) v = float(v * float(cfg_.t_scale));
  DeviceTensor t_dev(DType::F32, {B}, s);
  upload_into_async(t, DType::F32, t_dev.data(), rt.pinned(), rt.staging(), s);
  DeviceTensor emb(dt, {B, t_mlp0_.in}, s), mid(dt, {B, t_mlp0_.out}, s);
  DeviceTensor& adaln = adaln_;
  shape_into(adaln, dt, {B, A});
  timestep_embedding(dt, t_dev.buf.as<const float>(), B, t_mlp0_.in, kTimestepMaxPeriod, emb.data(), s);
  rt.linear({emb.data(), t_mlp0_.in, dt}, t_mlp0_.weight.data(), t_mlp0_.b(), {mid.data(), t_mlp0_.out, dt},
            {B, t_mlp0_.out, t_mlp0_.in}, opts_.gemm);
  silu(dt, mid.data(), mid.data(), mid.numel(), s);
  rt.linear({mid.data(), t_mlp2_.in, dt}, t_mlp2_.weight.data(), t_mlp2_.b(), {adaln.data(), A, dt}, {B, A, t_mlp2_.in},
            opts_.gemm);
  return adaln;
}

namespace {

// The RoPE freqs of each item's position ids into st.freqs [B, L, D/2, 2] (zero past an item's
// rows), gathered only when the ids or the tables (rope_generation) changed since the last step.
void refresh_freqs(StreamState& st, const std::vector<PaddedIds>& ids, int64_t D, const DeviceBuffer& rope,
                   const RopeAxes& axes, int64_t rope_generation, cudaStream_t s) {
  const int64_t B = int64_t(ids.size()), L = st.L;
  std::vector<std::vector<int32_t>> rows;
  GraphKey key;
  key.add(rope_generation).add(B).add(L);
  for (const auto& i : ids) {
    rows.push_back(id_rows(i.pos_ids, L));
    key.add(int64_t(rows.back().size()));
    for (const int32_t v : rows.back()) key.add(int64_t(v));
  }
  st.freqs_memo.refresh(std::move(key), [&] {
    st.freqs.reserve(size_t(B * L * D) * sizeof(float));
    ZIMAGE_CUDA_CHECK(cudaMemsetAsync(st.freqs.get(), 0, st.freqs.bytes(), s));
    DeviceBuffer ids_dev(0, s), rope_flag(sizeof(int), s);
    for (int64_t i = 0; i < B; ++i) {
      ids_dev.reserve(rows[size_t(i)].size() * sizeof(int32_t));
      rope_gather(rope.as<const float>(), axes, rows[size_t(i)], ids_dev.as<int32_t>(),
                  st.freqs.as<float>() + i * L * D, rope_flag.as<int>(), s);
    }
  });
}

// The part of embed_image / embed_caption they share (reference prepare_sequence): per item, the
// token rows `rows(i, dst)` writes into [B, L, C], then pad-token rows from ori_len, and the RoPE
// freqs of the item's position ids; the key mask when lengths differ.
template <class Rows>
void embed_stream(Runtime& rt, DType dt, int64_t C, int64_t D, const std::vector<PaddedIds>& ids,
                  const DeviceTensor& pad_token, const DeviceBuffer& rope, const RopeAxes& axes, int64_t rope_generation,
                  Rows rows, StreamState& st) {
  const cudaStream_t s = rt.stream();
  const int64_t B = int64_t(ids.size());
  st.lens.clear();
  for (const auto& i : ids) st.lens.push_back(i.total_len);
  st.L = *std::max_element(st.lens.begin(), st.lens.end());
  const int64_t L = st.L;
  shape_into(st.feats, dt, {B, L, C});
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(st.feats.data(), 0, size_t(st.feats.numel()) * dtype_size(dt), s));
  for (int64_t i = 0; i < B; ++i) {
    void* dst = offset(st.feats.data(), i * L * C, dt);
    rows(i, dst);
    fill_rows({dst, C, dt}, ids[size_t(i)].ori_len, ids[size_t(i)].total_len, pad_token.data(), C, s);
  }
  refresh_freqs(st, ids, D, rope, axes, rope_generation, s);
  refresh_mask(st, s);
}

}  // namespace

// Twin: the image half of forward_impl: patchify (+ repeated last row), x_embedder (all_x_embedder),
// prepare_sequence (x_pad_token, rope_embedder.x).
void CudaModel::embed_image(const DitInputs<float>& in, const std::vector<PaddedIds>& ids, Stream& out) {
  Runtime& rt = *rt_;
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt.stream();
  const int p = cfg_.patch_size(), pf = cfg_.f_patch_size();
  const int64_t C = cfg_.dim, P = cfg_.patch_dim();
  DeviceBuffer image_dev(0, s), tokens_dev(0, s);
  auto rows = [&](int64_t i, void* dst) {
    const Tensor<float>& x = in.x[size_t(i)];
    const int64_t n = ids[size_t(i)].total_len;
    reserve(image_dev, x.numel(), dt);
    upload_into_async(x, dt, image_dev.get(), rt.pinned(), rt.staging(), s);
    reserve(tokens_dev, n * P, dt);
    patchify_image(dt, image_dev.get(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), p, pf, n, tokens_dev.get(), s);
    rt.linear({tokens_dev.get(), P, dt}, x_embedder_.weight.data(), x_embedder_.b(), {dst, C, dt}, {n, C, P},
              opts_.gemm);
  };
  embed_stream(rt, dt, C, cfg_.head_dim(), ids, x_pad_token_, rope_buf_, rope_axes_, rope_generation_, rows, out);
}

// Twin: the caption half of forward_impl: captions padded with their last row (host), cap_embedder
// (RMSNorm, Linear), prepare_sequence (cap_pad_token, rope_embedder.cap). diffusers' caption ids
// carry pad_len extra (0,0,0) rows; pad_sequence keeps the first L (reference prepare_sequence), so
// a shorter item's batch-padding rows get position (0,0,0).
void CudaModel::embed_caption(const DitInputs<float>& in, const std::vector<PaddedIds>& ids, Stream& out) {
  Runtime& rt = *rt_;
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt.stream();
  const int64_t C = cfg_.dim, capdim = cfg_.cap_feat_dim;
  DeviceBuffer cap_in(0, s), cap_norm(0, s);
  auto rows = [&](int64_t i, void* dst) {
    const int64_t n = ids[size_t(i)].total_len;
    const Tensor<float> padded = pad_rows_with_last(in.cap_feats[size_t(i)], n);
    reserve(cap_in, padded.numel(), dt);
    reserve(cap_norm, padded.numel(), dt);
    upload_into_async(padded, dt, cap_in.get(), rt.pinned(), rt.staging(), s);
    rms_norm_modulate({cap_in.get(), capdim, dt}, cap_norm_.data(), {}, {n, n, capdim}, cfg_.norm_eps,
                      {cap_norm.get(), capdim, dt}, s);
    rt.linear({cap_norm.get(), capdim, dt}, cap_linear_.weight.data(), cap_linear_.b(), {dst, C, dt}, {n, C, capdim},
              opts_.gemm);
  };
  embed_stream(rt, dt, C, cfg_.head_dim(), ids, cap_pad_token_, rope_buf_, rope_axes_, rope_generation_, rows, out);
}

// The unified sequence's buffers and key mask, made before any block is queued (a mask upload
// synchronizes; nothing after it does until the end of the step).
void CudaModel::unified_buffers(const Stream& x, const Stream& cap, Stream& u) {
  const cudaStream_t s = rt_->stream();
  const int64_t B = int64_t(x.lens.size()), C = cfg_.dim, D = cfg_.head_dim();
  u.lens.clear();
  for (int64_t i = 0; i < B; ++i) u.lens.push_back(x.lens[size_t(i)] + cap.lens[size_t(i)]);
  u.L = *std::max_element(u.lens.begin(), u.lens.end());
  refresh_mask(u, s);
  shape_into(u.feats, opts_.dtype, {B, u.L, C});
  u.freqs.reserve(size_t(B * u.L * D) * sizeof(float));
}

// Twin: build_unified_sequence: per item [image rows, caption rows] (features and freqs), zero
// padding to the longest item.
void CudaModel::unify(const Stream& x, const Stream& cap, Stream& u) {
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt_->stream();
  const size_t es = dtype_size(dt);
  const int64_t B = int64_t(u.lens.size()), C = cfg_.dim, D = cfg_.head_dim();
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(u.feats.data(), 0, size_t(u.feats.numel()) * es, s));
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(u.freqs.get(), 0, u.freqs.bytes(), s));
  for (int64_t i = 0; i < B; ++i) {
    const int64_t nx = x.lens[size_t(i)], nc = cap.lens[size_t(i)];
    char* dst = static_cast<char*>(u.feats.data()) + size_t(i * u.L * C) * es;
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, offset(x.feats.data(), i * x.L * C, dt), size_t(nx * C) * es,
                                      cudaMemcpyDeviceToDevice, s));
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst + size_t(nx * C) * es, offset(cap.feats.data(), i * cap.L * C, dt),
                                      size_t(nc * C) * es, cudaMemcpyDeviceToDevice, s));
    float* f = u.freqs.as<float>() + i * u.L * D;
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(f, x.freqs.as<float>() + i * x.L * D, size_t(nx * D) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, s));
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(f + nx * D, cap.freqs.as<float>() + i * cap.L * D, size_t(nc * D) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, s));
  }
}

// Twin: reference/dit/final_layer.h final_layer (LayerNorm * (1 + Linear(SiLU(adaln_input))),
// Linear(C, P)), then patchify.h unpatchify of each item's image rows -> sample.{i} fp32.
std::vector<Tensor<float>> CudaModel::final_layer(const Stream& u, const DeviceTensor& adaln, const DitInputs<float>& in) {
  Runtime& rt = *rt_;
  const DType dt = opts_.dtype;
  const cudaStream_t s = rt.stream();
  const int p = cfg_.patch_size(), pf = cfg_.f_patch_size();
  const int64_t B = int64_t(u.lens.size()), C = cfg_.dim, P = cfg_.patch_dim(), A = t_mlp2_.out, Lu = u.L;
  DeviceTensor sa(dt, {B, A}, s), scale(dt, {B, C}, s), hn(dt, {B, Lu, C}, s), out(dt, {B, Lu, P}, s);
  silu(dt, adaln.data(), sa.data(), B * A, s);
  rt.linear({sa.data(), A, dt}, final_adaln_.weight.data(), final_adaln_.b(), {scale.data(), C, dt}, {B, C, A},
            opts_.gemm);
  final_layer_norm({u.feats.data(), C, dt}, {scale.data(), C, dt}, {B * Lu, Lu, C}, kFinalNormEps, {hn.data(), C, dt},
                   s);
  rt.linear({hn.data(), C, dt}, final_linear_.weight.data(), final_linear_.b(), {out.data(), P, dt}, {B * Lu, P, C},
            opts_.gemm);
  // Every item's image into one fp32 buffer, one copy into pinned memory, the step's one wait.
  int64_t total = 0;
  for (const auto& x : in.x) total += x.numel();
  DeviceBuffer img(size_t(total) * sizeof(float), s);
  float* host = rt.pinned().take(size_t(total), "the samples");
  int64_t at = 0;
  for (int64_t i = 0; i < B; ++i) {
    const Shape& xs = in.x[size_t(i)].shape;
    unpatchify(dt, offset(out.data(), i * Lu * P, dt), cfg_.in_channels, xs[1], xs[2], xs[3], p, pf,
               img.as<float>() + at, s);
    at += shape_numel(xs);
  }
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(host, img.get(), size_t(total) * sizeof(float), cudaMemcpyDeviceToHost, s));
  rt.sync();
  std::vector<Tensor<float>> samples;
  at = 0;
  for (const auto& x : in.x) {
    Tensor<float> sample(x.shape);
    std::copy(host + at, host + at + sample.numel(), sample.data.begin());
    at += sample.numel();
    samples.push_back(std::move(sample));
  }
  return samples;
}

// Room for everything the step copies between host and device (timesteps, latents, padded
// captions in; the samples out) in the pinned arena, and the fp32 staging for the largest upload,
// so that neither grows in the middle of the step. The stream is idle here (the last step ended
// with its download; a step that threw is waited for).
void CudaModel::stage_step(const DitInputs<float>& in, const std::vector<PaddedIds>& cap_ids) {
  rt_->sync();
  std::vector<size_t> bytes{size_t(in.t.numel()) * sizeof(float)};
  size_t largest = bytes[0], samples = 0;
  for (size_t i = 0; i < in.x.size(); ++i) {
    const size_t x = size_t(in.x[i].numel()) * sizeof(float);
    const size_t cap = size_t(cap_ids[i].total_len * cfg_.cap_feat_dim) * sizeof(float);
    bytes.push_back(x);
    bytes.push_back(cap);
    samples += x;
    largest = std::max({largest, x, cap});
  }
  bytes.push_back(samples);
  rt_->pinned().reset(ArenaCursor::footprint(bytes));
  if (opts_.dtype != DType::F32) rt_->staging().reserve(largest);
}

// Twin: reference/dit/transformer.cpp forward_impl, step for step (see the header comment).
std::vector<Tensor<float>> CudaModel::forward(const DitInputs<float>& in, const ForwardOptions& fopts) {
  const MemoryScope scope("the transformer (forward)");
  std::vector<Shape> x_shapes, cap_shapes;
  for (const auto& x : in.x) x_shapes.push_back(x.shape);
  for (const auto& c : in.cap_feats) cap_shapes.push_back(c.shape);
  ZIMAGE_CHECK(!fopts.scales_captions(), "CUDA model: --rope-scaling linear|ntk runs on the CPU reference only "
                                          "(its caption RoPE is computed per item, not gathered from the tables)");
  // The reference's checks and messages.
  check_dit_inputs(cfg_, x_shapes, cap_shapes, in.t.shape, fopts.extends_tables());
  const cudaStream_t s = rt_->stream();
  const int p = cfg_.patch_size(), pf = cfg_.f_patch_size();
  const int64_t B = int64_t(in.x.size());

  // Position ids and pad masks exactly as patchify_and_embed builds them (reference pad_with_ids).
  std::vector<PaddedIds> cap_ids, img_ids;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t lc = in.cap_feats[size_t(i)].dim(0), lc_pad = padded_caption_len(lc);
    cap_ids.push_back(pad_with_ids(lc, {lc_pad, 1, 1}, {1, 0, 0}));
    const Shape& xs = in.x[size_t(i)].shape;
    const std::array<int64_t, 3> tokens{xs[1] / pf, xs[2] / p, xs[3] / p};
    img_ids.push_back(pad_with_ids(tokens[0] * tokens[1] * tokens[2], tokens, {cap_ids.back().total_len + 1, 0, 0}));
  }
  stage_step(in, cap_ids);

  const DeviceTensor& adaln = timestep_embedder(in.t);
  // The RoPE tables, uploaded when their lengths change (a new table content moves
  // rope_generation_, so each stream gathers its freqs again).
  const std::vector<int> table_lens = rope_table_lens(cfg_, x_shapes, cap_shapes, fopts.extends_tables());
  GraphKey rope_key;
  for (const int n : table_lens) rope_key.add(int64_t(n));
  rope_memo_.refresh(std::move(rope_key), [&] {
    ++rope_generation_;
    upload_rope_tables(cfg_, table_lens, s, rope_buf_, rope_axes_);
  });
  Stream &x = *x_, &cap = *cap_, &u = *u_;
  embed_image(in, img_ids, x);
  embed_caption(in, cap_ids, cap);
  unified_buffers(x, cap, u);
  int64_t F = 0;
  for (const auto* stack : {&noise_refiner_, &context_refiner_, &layers_})
    for (const DeviceBlock& blk : *stack) F = std::max(F, blk.F);
  reserve_block_scratch(scratch_, opts_.dtype, B * std::max({x.L, cap.L, u.L}), B, cfg_.dim, F);

  // Every upload is queued (those that synchronize, on a shape change, are done) and every buffer
  // the blocks use has its size: from here on the step is queued without waiting (the refiners, unify, the layers), as
  // one CUDA graph when step_graph.h's conditions hold.
  const bool skip_cr = fopts.skip_context_refiner;  // --skip-context-refiner: cap_embedder's output goes straight on
  GraphKey key;
  // The attention version as the blocks' flash_attention calls will resolve it (it reads ZIMAGE_ATTENTION at
  // every call), not the requested one: a graph captured under one version must not replay under another.
  const AttentionVersion attention =
      resolve_attention(opts_.attention, opts_.dtype, cfg_.head_dim(), 3 * int64_t(cfg_.dim), cfg_.dim);
  key.add(int64_t(opts_.dtype)).add(int64_t(attention)).add(int64_t(opts_.gemm.allow_tf32));
  key.add(int64_t(opts_.gemm.allow_reduced_precision_reduction)).add(int64_t(requested_gemm_algo(opts_.gemm.algo)));
  key.add(int64_t(skip_cr)).add(B);
  for (const Stream* st : {&x, &cap, &u})
    key.add(st->L).add(st->lens).add(st->feats.data()).add(st->freqs.get()).add(st->mask_ptr());
  key.add(adaln.data());
  for (const DeviceBuffer* b : {&scratch_.mod[0], &scratch_.mod[1], &scratch_.h, &scratch_.qkv, &scratch_.o,
                                &scratch_.a, &scratch_.h13, &scratch_.g})
    key.add(b->get());
  key.add(int64_t(cudnn_workspace_generation()));
  const bool use_graph =
      opts_.graph && graphs_enabled_by_env() && !rt_->profile().enabled() && !debug_sync_enabled();
  graphs_->run(key, s, use_graph, [&] {
    run_blocks(*rt_, noise_refiner_.data(), noise_refiner_.size(), opts_.dtype,
               {x.feats.data(), B, x.L, x.mask_ptr(), &x.lens, x.freqs.as<const float>(), adaln.data()},
               cfg_.n_heads, cfg_.norm_eps, scratch_, opts_);
    if (!skip_cr)
      run_blocks(*rt_, context_refiner_.data(), context_refiner_.size(), opts_.dtype,
                 {cap.feats.data(), B, cap.L, cap.mask_ptr(), &cap.lens, cap.freqs.as<const float>(), nullptr},
                 cfg_.n_heads, cfg_.norm_eps, scratch_, opts_);
    unify(x, cap, u);
    run_blocks(*rt_, layers_.data(), layers_.size(), opts_.dtype,
               {u.feats.data(), B, u.L, u.mask_ptr(), &u.lens, u.freqs.as<const float>(), adaln.data()},
               cfg_.n_heads, cfg_.norm_eps, scratch_, opts_);
  });
  return final_layer(u, adaln, in);
}

}  // namespace zimage::gpu
