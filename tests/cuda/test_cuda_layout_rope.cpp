// Layout and RoPE kernels: patchify_image / unpatchify / fill_rows (T0: exact copies, against
// reference/dit/patchify.h), rope_gather (T0 against rope_embedder, including the table rows
// 1504..1535 of axis 0 and the bounds guard), and qk_norm_rope (T3 / T4 against rms_norm over D +
// apply_rotary_emb, with freqs of caption positions 1504..1535).
#include "cuda_support.h"
#include "weight_layout.h"
#include "kernels/patchify.h"
#include "kernels/qk_norm_rope.h"
#include "kernels/rope_gather.h"
#include "dit/rope_limits.h"
#include "dit/attention.h"
#include "dit/patchify.h"

namespace zimage {
namespace {

using testing::DType;

class Patchify : public ::testing::TestWithParam<std::tuple<DType, std::array<int64_t, 3>>> {};

TEST_P(Patchify, PatchifyPadUnpatchifyExact) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, hw] = GetParam();
  const int64_t C = 16, F = hw[0], H = hw[1], W = hw[2];
  const int p = 2, pf = 1;
  const Tensor<float> image = testing::round_to(dt, testing::randn<float>({C, F, H, W}, testing::test_seed()));
  const int64_t n_tok = (F / pf) * (H / p) * (W / p);
  const int64_t rows = padded_caption_len(n_tok);  // the next multiple of 32, as _pad_with_ids pads
  const std::string tag = testing::dtype_tag(dt) + "_" + std::to_string(H) + "x" + std::to_string(W);

  const auto id = testing::to_device(image, dt);
  testing::Guarded tok(dt, {rows, int64_t(pf) * p * p * C});
  gpu::patchify_image(dt, id.data(), C, F, H, W, p, pf, rows, tok.data(), testing::rt().stream());
  const Tensor<float> ref = pad_rows_with_last(patchify_image(image, p, pf), rows);
  testing::expect_exact("patchify+pad " + tag, numerics::compare(tok.host(), ref));
  tok.expect_guards_intact("patchify " + tag);

  testing::Guarded img(DType::F32, {C, F, H, W});
  gpu::unpatchify(dt, tok.data(), C, F, H, W, p, pf, static_cast<float*>(img.data()), testing::rt().stream());
  testing::expect_exact("unpatchify " + tag, numerics::compare(img.host(), unpatchify(ref, {F, H, W}, p, pf, C)));
  img.expect_guards_intact("unpatchify " + tag);

  // x_pad_token substitution on rows [n_tok, rows)
  const Tensor<float> token = testing::round_to(dt, testing::randn<float>({1, 64}, testing::test_seed() + 1));
  const auto td = testing::to_device(token, dt);
  gpu::fill_rows({tok.data(), 64, dt}, n_tok, rows, td.data(), 64, testing::rt().stream());
  Tensor<float> filled = ref;
  for (int64_t r = n_tok; r < rows; ++r) std::copy(token.ptr(), token.ptr() + 64, filled.ptr() + r * 64);
  testing::expect_exact("fill_rows " + tag, numerics::compare(tok.host(), filled));
  tok.expect_guards_intact("fill_rows " + tag);
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, Patchify,
    ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                       ::testing::Values(std::array<int64_t, 3>{1, 128, 128}, std::array<int64_t, 3>{1, 10, 14},
                                         std::array<int64_t, 3>{1, 2, 2}, std::array<int64_t, 3>{1, 62, 34})),
    [](const auto& i) {
      const auto& s = std::get<1>(i.param);
      return testing::dtype_tag(std::get<0>(i.param)) + "_H" + std::to_string(s[1]) + "_W" + std::to_string(s[2]);
    });

// ---------------------------------------------------------------- RoPE gather

struct DeviceTables {
  gpu::DeviceBuffer buf;
  gpu::RopeAxes axes;
};
DeviceTables device_tables(const std::vector<Tensor<float>>& tables) {
  DeviceTables d;
  std::vector<float> all;
  d.axes.n_axes = int(tables.size());
  for (size_t a = 0; a < tables.size(); ++a) {
    d.axes.offset[a] = int64_t(all.size());
    d.axes.len[a] = int(tables[a].dim(0));
    d.axes.pairs[a] = int(tables[a].dim(1));
    all.insert(all.end(), tables[a].data.begin(), tables[a].data.end());
  }
  d.buf = gpu::DeviceBuffer(all.size() * sizeof(float));
  testing::copy_to_device(d.buf.get(), all.data(), all.size() * sizeof(float));
  return d;
}

// Caption rows at axis-0 positions 1504..1535 (the last rows of the 1536-row table), then image
// tokens at the last position a 1504-token caption allows (1505 + f) on a 32 x 32 corner of the
// 512 x 512 grid including rows/cols 480..511.
Tensor<int32_t> boundary_ids() {
  std::vector<int32_t> v;
  for (int32_t p = 1504; p <= 1535; ++p) v.insert(v.end(), {p, 0, 0});
  for (int32_t h = 480; h < 512; ++h)
    for (int32_t w = 480; w < 512; ++w) v.insert(v.end(), {1505, h, w});
  return Tensor<int32_t>({int64_t(v.size() / 3), 3}, v);
}

TEST(CudaRopeGather, Rows1504To1535ExactAndGuarded) {
  ZIMAGE_REQUIRE_CUDA();
  const ZImageConfig cfg;  // Turbo: axes_dims [32, 48, 48], axes_lens [1536, 512, 512]
  const auto tables = precompute_freqs_cis<float>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta);
  const DeviceTables dtab = device_tables(tables);
  const Tensor<int32_t> ids = boundary_ids();
  const int64_t N = ids.dim(0);
  gpu::DeviceBuffer ids_dev(size_t(ids.numel()) * sizeof(int32_t)), flag(sizeof(int));
  testing::Guarded out(DType::F32, {N, 64, 2});
  gpu::rope_gather(dtab.buf.as<const float>(), dtab.axes, ids.data, ids_dev.as<int32_t>(), static_cast<float*>(out.data()),
                   flag.as<int>(), testing::rt().stream());
  testing::expect_exact("rope_gather rows 1504..1535", numerics::compare(out.host(), rope_embedder(tables, ids)));
  out.expect_guards_intact("rope_gather");

  // Host check: the reference's message, before anything reaches the device.
  Tensor<int32_t> bad = ids;
  bad[0] = 1536;
  try {
    gpu::rope_gather(dtab.buf.as<const float>(), dtab.axes, bad.data, ids_dev.as<int32_t>(),
                     static_cast<float*>(out.data()), flag.as<int>(), testing::rt().stream());
    ADD_FAILURE() << "position 1536 accepted";
  } catch (const Error& e) {
    std::string ref_msg;
    try {
      rope_embedder(tables, bad);
    } catch (const Error& r) {
      ref_msg = r.what();
    }
    EXPECT_EQ(std::string(e.what()), ref_msg);
    std::printf("  host refusal: %s\n", e.what());
  }

  // Kernel guard: a bad id that skipped the host check writes NaN there, sets the flag, reads nothing.
  testing::copy_to_device(ids_dev.get(), bad.ptr(), size_t(bad.numel()) * sizeof(int32_t));
  testing::memset_device(flag.get(), 0, sizeof(int));
  gpu::rope_gather_async(dtab.buf.as<const float>(), dtab.axes, ids_dev.as<const int32_t>(), N,
                         static_cast<float*>(out.data()), flag.as<int>(), testing::rt().stream());
  testing::rt().sync();
  int f = 0;
  testing::copy_to_host(&f, flag.get(), sizeof(int));
  EXPECT_EQ(f, 1) << "the kernel guard did not report position 1536";
  const Tensor<float> h = out.host();
  EXPECT_TRUE(std::isnan(h[0]) && std::isnan(h[1])) << "row 0, pair 0 should be NaN";
  EXPECT_FALSE(std::isnan(h[2 * 16])) << "axis 1 of row 0 is in range and should be gathered";
  out.expect_guards_intact("rope_gather (guarded bad id)");
}

// ---------------------------------------------------------------- q/k norm + RoPE

// Widths and head_dims, with the version each dtype runs (v2's elements per lane, 0 for v1; the
// test checks the kernel's own choice against it): C 3840 D 128 (the model's) and C 512 D 64 run
// v2 in both dtypes; C 1024 D 256 runs v2 in bf16 (8 elements per lane, 16 bytes) and v1 in fp32
// (32 bytes per lane); C 64 D 32 runs v1 (D not a multiple of 64); C 640 D 128 has an odd head
// count (5); the rope_only cases pass no norm weights (qk_norm false: RoPE alone).
struct HeadWidth {
  int64_t C, D;
  bool norm;
  int lanes_bf16, lanes_f32;
};
class QkNormRope : public ::testing::TestWithParam<std::tuple<DType, int64_t, HeadWidth>> {};

std::string qk_norm_rope_case_name(const ::testing::TestParamInfo<std::tuple<DType, int64_t, HeadWidth>>& i) {
  const HeadWidth w = std::get<2>(i.param);
  return testing::dtype_tag(std::get<0>(i.param)) + "_L" + std::to_string(std::get<1>(i.param)) + "_C" +
         std::to_string(w.C) + "_D" + std::to_string(w.D) + (w.norm ? "" : "_rope_only");
}

TEST_P(QkNormRope, AgainstRmsNormAndApplyRotaryEmb) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, L, width] = GetParam();
  const int64_t C = width.C, D = width.D;
  const int64_t H = C / D, B = 1;
  ZImageConfig cfg;
  cfg.axes_dims = {int(D / 4), int(D * 3 / 8), int(D * 3 / 8)};  // the model's 32, 48, 48 split at D 128
  // Positions: the boundary ids (captions at 1504..1535, image at 1505 on the grid corner), cycled.
  const Tensor<int32_t> bids = boundary_ids();
  Tensor<int32_t> ids({L, 3});
  for (int64_t r = 0; r < L; ++r)
    for (int a = 0; a < 3; ++a) ids[r * 3 + a] = bids[(r % bids.dim(0)) * 3 + a];
  const Tensor<float> ff = rope_embedder(precompute_freqs_cis<float>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids);
  const Tensor<double> fd =
      rope_embedder(precompute_freqs_cis<double>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids).reshaped({B, L, D / 2, 2});

  const uint64_t seed = testing::test_seed();
  const Tensor<float> qkv = testing::round_to(dt, testing::randn<float>({B * L, 3 * C}, seed, 2.0));
  Tensor<float> nq = testing::randn<float>({D}, seed + 1, 0.2), nk = testing::randn<float>({D}, seed + 2, 0.2);
  for (auto& v : nq.data) v += 1;
  for (auto& v : nk.data) v += 1;
  nq = testing::round_to(dt, nq), nk = testing::round_to(dt, nk);

  testing::Guarded buf(dt, {B * L, 3 * C});
  testing::upload_into_guarded(qkv, dt, buf);
  const auto fdev = testing::to_device(ff, DType::F32);
  const auto qd = testing::to_device(nq, dt), kd = testing::to_device(nk, dt);
  const gpu::DevRows qkv_rows{buf.data(), 3 * C, dt};
  const void* norm_q = width.norm ? qd.data() : nullptr;
  const void* norm_k = width.norm ? kd.data() : nullptr;
  const std::string tag = testing::dtype_tag(dt) + "_L" + std::to_string(L) + "_C" + std::to_string(C) + "_D" +
                          std::to_string(D) + (width.norm ? "" : "_rope_only");
  const int lanes = gpu::qk_norm_rope_v2_lanes(dt, D, 3 * C, {qkv_rows.data, qkv_rows.from_col(C).data, norm_q, norm_k},
                                               fdev.buf.as<const float>());
  std::printf("  %s runs %s\n", tag.c_str(), lanes ? ("v2, " + std::to_string(lanes) + " elements a lane").c_str() : "v1");
  EXPECT_EQ(lanes, dt == DType::F32 ? width.lanes_f32 : width.lanes_bf16) << tag << ": not the version this case is for";
  gpu::qk_norm_rope(qkv_rows, qkv_rows.from_col(C), {norm_q, norm_k, 1e-5}, fdev.buf.as<const float>(), {B, L, H, D},
                    testing::rt().stream());
  const Tensor<float> got = buf.host();

  for (int which = 0; which < 3; ++which) {  // q, k rotated; v untouched
    const Tensor<float> part = gpu::qkv_part(qkv, which).reshaped({B, L, H, D});
    const Tensor<float> res = gpu::qkv_part(got, which).reshaped({B, L, H, D});
    if (which == 2) {
      testing::expect_exact("qk_norm_rope leaves v untouched " + tag, numerics::compare(res, part));
      continue;
    }
    const Tensor<float>& nw = which ? nk : nq;
    Tensor<double> ref = width.norm ? rms_norm(part.cast<double>(), nw.cast<double>(), 1e-5) : part.cast<double>();
    apply_rotary_emb(ref, fd);
    Tensor<float> peer = width.norm ? testing::round_to(dt, rms_norm(part, nw, 1e-5)) : part;
    apply_rotary_emb(peer, ff.reshaped({B, L, D / 2, 2}));
    peer = testing::round_to(dt, peer);
    std::vector<numerics::Op> chain{{"rope", 2, 2, false}, {"cos/sin of an fp32 angle", 1, 1, true}};
    if (width.norm) chain.insert(chain.begin(), testing::op_rms(double(D)));
    testing::expect_t3_or_t4(std::string(which ? "k" : "q") + (width.norm ? " norm+rope " : " rope ") + tag, dt, res,
                             &peer, ref, chain);
  }
  buf.expect_guards_intact("qk_norm_rope " + tag);
}

INSTANTIATE_TEST_SUITE_P(Cuda, QkNormRope,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t{97}, int64_t{1025}, int64_t{4096 + 32}),
                                            ::testing::Values(HeadWidth{3840, 128, true, 4, 4}, HeadWidth{512, 64, true, 2, 2},
                                                              HeadWidth{1024, 256, true, 8, 0}, HeadWidth{64, 32, true, 0, 0},
                                                              HeadWidth{640, 128, true, 4, 4},
                                                              HeadWidth{3840, 128, false, 4, 4},
                                                              HeadWidth{512, 64, false, 2, 2})),
                         qk_norm_rope_case_name);

// Host-side, no device: which head_dims, dtypes and layouts qk_norm_rope runs as v2 (and so which
// the cases above reach). Addresses are only compared, never read.
TEST(QkNormRopeVersion, V2ForTwoFourOrEightAlignedElementsPerLane) {
  alignas(256) static char pool[1024];
  const void* a = pool;            // 256-byte aligned
  const void* odd8 = pool + 8;     // 8-byte aligned only
  const float* f = reinterpret_cast<const float*>(pool);
  const float* f8 = reinterpret_cast<const float*>(pool + 8);
  using gpu::qk_norm_rope_v2_lanes;
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 128, 3 * 3840, {a, a, a, a}, f), 4);
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::F32, 128, 3 * 3840, {a, a, a, a}, f), 4);
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 64, 3 * 512, {a, a, nullptr, nullptr}, f), 2);
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 256, 3 * 1024, {a, a, a, a}, f), 8);
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::F32, 256, 3 * 1024, {a, a, a, a}, f), 0);   // 32 bytes a lane
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 192, 3 * 768, {a, a, a, a}, f), 0);   // 6 a lane
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 32, 3 * 64, {a, a, a, a}, f), 0);     // 1 a lane
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 96, 3 * 288, {a, a, a, a}, f), 0);    // 3 a lane
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 128, 3 * 3840 + 2, {a, a, a, a}, f), 0);  // row stride
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::F32, 128, 3 * 3840, {a, odd8, a, a}, f), 0);    // k on 8 bytes
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 128, 3 * 3840, {a, odd8, a, a}, f), 4);   // 8 bytes suffice
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 128, 3 * 3840, {a, a, a, a}, f8), 0);     // freqs on 8 bytes
  EXPECT_EQ(qk_norm_rope_v2_lanes(DType::BF16, 64, 3 * 512, {a, a, a, a}, f8), 2);       // 8 bytes suffice
}

// Host-side, no device: qkv_part undoes the fused to_qkv column layout
// (weight_layout.h) exactly; every value of a [2, 3, 3C] tensor is distinct.
TEST(WeightLayout, QkvPartSplitsTheFusedColumns) {
  const int64_t C = 8;
  Tensor<float> qkv({2, 3, 3 * C});
  for (int64_t i = 0; i < qkv.numel(); ++i) qkv[i] = float(i);
  for (int which = 0; which < 3; ++which) {
    const Tensor<float> part = gpu::qkv_part(qkv, which);
    ASSERT_EQ(part.shape, (Shape{2, 3, C}));
    Tensor<float> want({2, 3, C});
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < C; ++c) want[r * C + c] = float(r * 3 * C + which * C + c);
    testing::expect_exact("qkv_part " + std::to_string(which), numerics::compare(part, want));
  }
}

}  // namespace
}  // namespace zimage
