// CUDA graphs of the DiT step (cuda/step_graph.h):
// - the policy (GraphCache), host-only, runs without a GPU: a key runs eagerly the first time, is
//   captured the second, replayed after; a failed capture stays eager; the least recently used
//   graph is evicted and its key starts over; keys tell apart every field, list lengths included;
// - on a GPU: CudaModel::forward with graphs on, step after step, is bitwise the same model with
//   graphs off (tiny_single; tiny_batch2 with its key masks; fp32 and bf16), including a new
//   timestep between replays (the graph reads the step's inputs, it does not keep them) and a
//   second shape in between (its own key; the first shape's graph is replayed again after it,
//   and the second is compared with a model that never saw the first: no stale per-shape state),
//   a larger shape that reallocates every buffer, the first shape after it, and the larger shape
//   transposed (the same key, other position ids);
// - the step's state kept between forwards, host-only: ShapeMemo (what is rebuilt when shapes
//   change) and ArenaCursor (the pinned staging's regions);
// - the step profile (cuda/step_profile.h), on a GPU: with it on, the step runs eagerly, every part
//   gets time, the samples are bitwise the step without it, and collect() starts over; its part
//   names (host).
#include <cstring>
#include <set>

#include "cuda_support.h"
#include "forward.h"
#include "kernels/flash_attention.h"
#include "step_graph.h"
#include "support/expect_errors.h"
#include "support/goldens.h"
#include "validation/golden_file.h"
#include "validation/golden_inputs.h"

namespace zimage {
namespace {

using testing::DType;
using gpu::GraphAction;
using gpu::GraphCache;
using gpu::GraphKey;

GraphKey key_of(std::initializer_list<int64_t> v) {
  GraphKey k;
  for (int64_t x : v) k.add(x);
  return k;
}

TEST(StepGraphPolicy, EagerThenCaptureThenReplay) {
  GraphCache<int> c;
  const GraphKey k = key_of({1, 2, 3});
  EXPECT_EQ(c.next(k), GraphAction::eager);
  EXPECT_EQ(c.next(k), GraphAction::capture);
  c.store(k, 7);
  EXPECT_EQ(c.next(k), GraphAction::replay);
  ASSERT_NE(c.find(k), nullptr);
  EXPECT_EQ(*c.find(k), 7);
  // Another key has its own history.
  EXPECT_EQ(c.next(key_of({1, 2, 4})), GraphAction::eager);
  EXPECT_EQ(c.next(k), GraphAction::replay);
}

TEST(StepGraphPolicy, FailedCaptureStaysEager) {
  GraphCache<int> c;
  const GraphKey k = key_of({5});
  EXPECT_EQ(c.next(k), GraphAction::eager);
  EXPECT_EQ(c.next(k), GraphAction::capture);
  c.fail(k);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.next(k), GraphAction::eager);
  EXPECT_EQ(c.size(), 0u);
}

TEST(StepGraphPolicy, EvictsTheLeastRecentlyUsedAndItStartsOver) {
  GraphCache<int> c(2);
  const GraphKey a = key_of({1}), b = key_of({2}), d = key_of({3});
  for (const GraphKey* k : {&a, &b, &d}) {
    c.next(*k);
    ASSERT_EQ(c.next(*k), GraphAction::capture);
  }
  c.store(a, 1);
  c.store(b, 2);
  EXPECT_EQ(c.next(a), GraphAction::replay);  // a is now the most recently used
  c.store(d, 3);                              // evicts b
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.find(b), nullptr);
  EXPECT_EQ(c.next(b), GraphAction::eager);  // b starts over
  EXPECT_EQ(c.next(b), GraphAction::capture);
  EXPECT_EQ(c.next(a), GraphAction::replay);
  EXPECT_EQ(c.next(d), GraphAction::replay);
}

TEST(StepGraphPolicy, KeysTellApartEveryFieldAndListLengths) {
  GraphKey x, y;
  x.add(std::vector<int64_t>{1, 2}).add(std::vector<int64_t>{3});
  y.add(std::vector<int64_t>{1}).add(std::vector<int64_t>{2, 3});
  EXPECT_FALSE(x == y);
  int a = 0, b = 0;
  EXPECT_FALSE(GraphKey().add(&a) == GraphKey().add(&b));
  EXPECT_TRUE(GraphKey().add(&a).add(int64_t(4)) == GraphKey().add(&a).add(int64_t(4)));
}

TEST(ShapeMemo, HoldsOnlyTheLastKeyRememberedAndNothingAfterForget) {
  gpu::ShapeMemo m;
  const GraphKey a = GraphKey().add(int64_t(1)).add(int64_t(32)), b = GraphKey().add(int64_t(1)).add(int64_t(64));
  EXPECT_FALSE(m.holds(a));  // nothing built yet
  m.remember(a);
  EXPECT_TRUE(m.holds(a));
  EXPECT_FALSE(m.holds(b));
  m.forget();  // a rebuild began (and may throw): nothing is claimed
  EXPECT_FALSE(m.holds(a));
  m.remember(b);
  EXPECT_TRUE(m.holds(b));
  EXPECT_FALSE(m.holds(a));
}

TEST(ShapeMemo, RefreshRebuildsOnlyForANewKeyAndClaimsNothingAfterAThrow) {
  gpu::ShapeMemo m;
  const GraphKey a = GraphKey().add(int64_t(1)), b = GraphKey().add(int64_t(2));
  int rebuilds = 0;
  m.refresh(a, [&] { ++rebuilds; });
  m.refresh(a, [&] { ++rebuilds; });
  EXPECT_EQ(rebuilds, 1);
  EXPECT_THROW(m.refresh(b, [&] { throw Error("half-way"); }), Error);
  EXPECT_FALSE(m.holds(a));  // the failed rebuild may have overwritten a's data
  EXPECT_FALSE(m.holds(b));
  m.refresh(a, [&] { ++rebuilds; });
  EXPECT_EQ(rebuilds, 2);
}

TEST(ArenaCursor, RegionsAreAlignedDisjointAndWithinTheReservedRoom) {
  using gpu::ArenaCursor;
  const std::vector<size_t> sizes{4, 256, 257, 1000, 1};
  gpu::ArenaCursor c;
  c.capacity = ArenaCursor::footprint(sizes);
  EXPECT_EQ(c.capacity, size_t(256 + 256 + 512 + 1024 + 256));
  size_t end = 0;
  for (const size_t b : sizes) {
    const size_t at = c.take(b, "a region");
    EXPECT_EQ(at % ArenaCursor::kAlign, 0u) << b;
    EXPECT_GE(at, end) << b;  // after the previous region's last byte
    end = at + b;
  }
  EXPECT_LE(end, c.capacity);
  try {
    c.take(1, "the samples");
    ADD_FAILURE() << "a region past the reserved room was handed out";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "pinned staging: the samples needs 1 bytes, the step reserved 0 more");
  }
  c.used = 0;  // reset(): the same room again
  EXPECT_EQ(c.take(c.capacity, "everything"), 0u);
}

// The device memory accounting's bookkeeping (device_tensor.h MemoryPeaks): the high-water marks
// follow allocations and samples, a reset keeps what is still allocated as the new peak, and a
// free never takes the count below zero.
TEST(MemoryPeaks, HighWaterMarksFollowAllocationsSamplesAndResets) {
  gpu::MemoryPeaks m;
  m.on_alloc(100);
  m.on_alloc(50);
  m.on_free(100);
  EXPECT_EQ(m.allocated, 50u);
  EXPECT_EQ(m.peak_allocated, 150u);
  m.on_sample(1000);
  m.on_sample(400);
  EXPECT_EQ(m.peak_device_used, 1000u);
  EXPECT_EQ(m.samples, 2);
  m.reset_peaks();
  EXPECT_EQ(m.peak_allocated, 50u);
  EXPECT_EQ(m.peak_device_used, 0u);
  EXPECT_EQ(m.samples, 0);
  m.on_alloc(10);
  EXPECT_EQ(m.peak_allocated, 60u);
  m.on_free(500);
  EXPECT_EQ(m.allocated, 0u);
}

// Out of device memory: one line naming the innermost MemoryScope and the size; scopes nest and
// unwind; ZIMAGE_CUDA_MEMORY_LIMIT's values.
TEST(OutOfMemory, TheLineNamesTheComponentTheSizeAndTheLimit) {
  EXPECT_EQ(gpu::MemoryScope::current(), "the CUDA path");
  {
    const gpu::MemoryScope outer("the transformer (upload)");
    {
      const gpu::MemoryScope inner("the VAE (decode)");
      EXPECT_EQ(gpu::MemoryScope::current(), "the VAE (decode)");
    }
    EXPECT_EQ(gpu::MemoryScope::current(), "the transformer (upload)");
    EXPECT_EQ(gpu::out_of_memory_message(gpu::MemoryScope::current(), size_t(150) << 20, size_t(80) << 20,
                                         size_t(81559) << 20),
              "out of GPU memory: the transformer (upload) asked for 150.0 MiB; 80.0 MiB of 81559.0 MiB free");
  }
  EXPECT_EQ(gpu::MemoryScope::current(), "the CUDA path");
  EXPECT_EQ(gpu::out_of_memory_message("the VAE (decode)", size_t(3) << 19, size_t(23) << 30, 0, size_t(24) << 30),
            "out of GPU memory: the VAE (decode) asked for 1.5 MiB past ZIMAGE_CUDA_MEMORY_LIMIT (24576.0 MiB; "
            "23552.0 MiB held)");
  EXPECT_EQ(gpu::parse_memory_limit("24G"), size_t(24) << 30);
  EXPECT_EQ(gpu::parse_memory_limit("512M"), size_t(512) << 20);
  EXPECT_EQ(gpu::parse_memory_limit("64K"), size_t(64) << 10);
  EXPECT_EQ(gpu::parse_memory_limit("1000"), size_t(1000));
  for (const char* bad : {"", "G", "24GB", "1.5G", "-1", "24 G", "0", "0M", "99999999999999999"}) {
    try {
      (void)gpu::parse_memory_limit(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("ZIMAGE_CUDA_MEMORY_LIMIT '"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

// ---------------------------------------------------------------- on a GPU

// An allocation larger than the device: the one line, and the error does not stick (the next
// allocation works).
TEST(OutOfMemory, AnAllocationPastTheDeviceIsOneLineAndDoesNotStick) {
  ZIMAGE_REQUIRE_CUDA();
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  const gpu::MemoryScope scope("an out-of-memory test");
  const size_t held = gpu::device_memory().allocated;
  try {
    const gpu::DeviceBuffer b(total_b + (size_t(1) << 30));
    ADD_FAILURE() << "an allocation past the device succeeded";
  } catch (const Error& e) {
    const std::string m = e.what();
    std::printf("  %s\n", m.c_str());
    EXPECT_EQ(m.rfind("out of GPU memory: an out-of-memory test asked for ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_EQ(gpu::device_memory().allocated, held) << "a failed allocation was counted";
  const gpu::DeviceBuffer small(size_t(1) << 20);
  EXPECT_NE(small.get(), nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// The process's figures on a GPU: a 64 MiB buffer is counted while it lives and sampled while
// watching. The device's used memory is printed, not asserted: gpu-check runs test programs side
// by side, and cudaMemGetInfo sees theirs too.
TEST(DeviceMemory, CountsBuffersAndSamplesTheDevice) {
  ZIMAGE_REQUIRE_CUDA();
  gpu::watch_device_memory(true);
  const gpu::MemoryPeaks before = gpu::device_memory();
  ASSERT_EQ(before.samples, 1);
  const size_t bytes = size_t(64) << 20;
  {
    const gpu::DeviceBuffer b(bytes);
    const gpu::MemoryPeaks during = gpu::device_memory();
    EXPECT_EQ(during.allocated, before.allocated + bytes);
    EXPECT_GT(during.peak_device_used, 0u);
    EXPECT_GE(during.samples, 2);
  }
  const gpu::MemoryPeaks after = gpu::device_memory();
  EXPECT_EQ(after.allocated, before.allocated);
  EXPECT_EQ(after.peak_allocated, before.allocated + bytes);
  gpu::watch_device_memory(false);
  std::printf("  device used: %.1f MiB before, peak %.1f MiB with the buffer\n", double(before.peak_device_used) / 1048576,
              double(after.peak_device_used) / 1048576);
}

int64_t bitwise_differences(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].numel() != b[i].numel()) return -1;
    for (int64_t j = 0; j < a[i].numel(); ++j) n += std::memcmp(&a[i][j], &b[i][j], sizeof(float)) != 0;
  }
  return n;
}

// The first item of a batch (another shape: B 1).
DitInputs<float> first_item(const DitInputs<float>& in) {
  DitInputs<float> o;
  o.x = {in.x[0]};
  o.cap_feats = {in.cap_feats[0]};
  o.t = Tensor<float>({1}, std::vector<float>{in.t[0]});
  return o;
}

// Every image of the batch doubled in width, [C, F, H, W] -> [C, F, H, 2W] (the image repeated
// side by side): a larger shape, so every per-shape buffer grows (is reallocated).
DitInputs<float> widened(const DitInputs<float>& in) {
  DitInputs<float> o = in;
  for (Tensor<float>& x : o.x) {
    const int64_t rows = x.numel() / x.dim(3), W = x.dim(3);
    Tensor<float> w({x.dim(0), x.dim(1), x.dim(2), 2 * W});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < 2 * W; ++c) w[r * 2 * W + c] = x[r * W + c % W];
    x = std::move(w);
  }
  return o;
}

// Every image transposed, [C, F, H, W] -> [C, F, W, H]: when H != W, the same batch size and
// token counts (the same graph key) with other position ids, so other RoPE freqs.
DitInputs<float> transposed(const DitInputs<float>& in) {
  DitInputs<float> o = in;
  for (Tensor<float>& x : o.x) {
    const int64_t planes = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    Tensor<float> t({x.dim(0), x.dim(1), W, H});
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) t[(p * W + w) * H + h] = x[(p * H + h) * W + w];
    x = std::move(t);
  }
  return o;
}

// The two shape changes above, host-only: widened repeats each row, transposed moves (h, w) to
// (w, h) and undoes itself.
TEST(StepGraphInputs, WidenedRepeatsRowsAndTransposedSwapsHeightAndWidth) {
  DitInputs<float> in;
  std::vector<float> v(2 * 1 * 2 * 3);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  in.x = {Tensor<float>({2, 1, 2, 3}, v)};
  const DitInputs<float> wide = widened(in), tall = transposed(wide);
  ASSERT_EQ(wide.x[0].shape, (Shape{2, 1, 2, 6}));
  EXPECT_EQ(wide.x[0][7], 4.0f);   // channel 0, row 1, column 1: the original (1, 1)
  EXPECT_EQ(wide.x[0][10], 4.0f);  // row 1, column 4 = 1 + 3: the same value repeated
  ASSERT_EQ(tall.x[0].shape, (Shape{2, 1, 6, 2}));
  EXPECT_EQ(tall.x[0][4 * 2 + 1], wide.x[0][1 * 6 + 4]);  // (h 4, w 1) of tall is (h 1, w 4) of wide
  EXPECT_EQ(tall.x[0][12 + 3 * 2 + 0], wide.x[0][12 + 0 * 6 + 3]);  // channel 1
  EXPECT_EQ(transposed(tall).x[0].data, wide.x[0].data);
}

class CudaStepGraph : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(CudaStepGraph, ReplaysAreBitwiseTheEagerStep) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [c, dt] = GetParam();
  const GoldenFile g = open_golden(testing::golden_path(c));
  const ZImageWeights<float> w = load_weights<float>(g.config, *g.params);
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  DitInputs<float> later = in;  // another timestep, the same shapes
  for (auto& t : later.t.data) t = t * 0.5f + 0.125f;
  const DitInputs<float> other = first_item(in);
  const DitInputs<float> wide = widened(in), tall = transposed(wide);
  ASSERT_NE(wide.x[0].dim(2), wide.x[0].dim(3)) << c << ": transposing must change the position ids";

  gpu::CudaOptions eager_opts;
  eager_opts.dtype = dt;
  eager_opts.graph = false;
  gpu::CudaModel eager(w, eager_opts);
  const auto want = eager.forward(in), want_later = eager.forward(later);
  // The other shape from a model that never saw the first: m below, which saw it, must not keep
  // any of its per-shape state (RoPE tables, freqs, masks: ShapeMemo) into the B 1 step.
  const auto want_other = gpu::CudaModel(w, eager_opts).forward(other);
  const auto want_wide = gpu::CudaModel(w, eager_opts).forward(wide);
  const auto want_tall = gpu::CudaModel(w, eager_opts).forward(tall);
  EXPECT_EQ(eager.graph_counts().captured + eager.graph_counts().replayed + eager.graph_counts().eager, 0);

  gpu::CudaOptions graph_opts = eager_opts;
  graph_opts.graph = true;
  gpu::CudaModel m(w, graph_opts);
  const std::string what = c + " " + testing::dtype_tag(dt);
  // (inputs, expected, label): steps 1-4 the same shape (eager, capture, replays), a new timestep,
  // another shape, the first shape again; then a larger shape (every buffer reallocated: a graph
  // kept from before must not be replayed over freed memory), the first shape after it, the
  // larger one transposed (the same key, other position ids: the graph must read the freqs
  // gathered for this step) and the larger one again.
  const std::vector<std::tuple<const DitInputs<float>*, const std::vector<Tensor<float>>*, const char*>> steps{
      {&in, &want, "step 1"},
      {&in, &want, "step 2"},
      {&in, &want, "step 3"},
      {&in, &want, "step 4"},
      {&later, &want_later, "new t"},
      {&other, &want_other, "B 1"},
      {&in, &want, "first shape again"},
      {&wide, &want_wide, "wider images"},
      {&in, &want, "first shape after the wider one"},
      {&tall, &want_tall, "wider images transposed"},
      {&wide, &want_wide, "wider images again"}};
  for (const auto& [inputs, expected, label] : steps) {
    const int64_t diff = bitwise_differences(m.forward(*inputs), *expected);
    const gpu::GraphCounts& n = m.graph_counts();
    std::printf("  %s %s: %lld values differ from the eager model (graph counts: eager %lld, captured %lld, "
                "replayed %lld, failed %lld)\n",
                what.c_str(), label, (long long)diff, (long long)n.eager, (long long)n.captured,
                (long long)n.replayed, (long long)n.failed);
    EXPECT_EQ(diff, 0) << what << " " << label;
  }
  const gpu::GraphCounts& n = m.graph_counts();
  EXPECT_EQ(n.failed, 0) << what;
  EXPECT_EQ(n.eager + n.captured + n.replayed, int64_t(steps.size())) << what;
  // The first shape: one eager step, or two when cuDNN grew its workspace in the first (a new
  // workspace is a new key), then one capture and replays: steps 4 and "new t" at least.
  EXPECT_GE(n.captured, 1) << what;
  EXPECT_GE(n.replayed, 2) << what;
}

// StepGraphs::run on queued work of its own: an error thrown while the capture stays valid and again
// by the eager rerun is the caller's (thrown on, the key captured at a later step); an operation the
// stream cannot capture (a synchronization), or an error thrown only while capturing, marks the key
// eager-only and the work runs eagerly.
TEST(StepGraphsRun, TheStepsOwnErrorIsThrownOnAndACaptureErrorStaysEager) {
  ZIMAGE_REQUIRE_CUDA();
  const cudaStream_t s = testing::rt().stream();
  gpu::DeviceBuffer buf(4096);
  auto fill = [&](int v) { ZIMAGE_CUDA_CHECK(cudaMemsetAsync(buf.get(), v, 4096, s)); };
  auto first_byte = [&] {
    unsigned char b = 0;
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(&b, buf.get(), 1, cudaMemcpyDeviceToHost, s));
    ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(s));
    return int(b);
  };
  gpu::StepGraphs g;
  const GraphKey k = key_of({11});
  g.run(k, s, true, [&] { fill(1); });  // eager
  EXPECT_THROW_MSG_HAS(g.run(k, s, true,
                             [&] {
                               fill(2);
                               throw Error("the step's own error");
                             }),
                       "the step's own error");
  EXPECT_EQ(g.counts().failed, 0) << "an error of the step's own must not mark the key";
  g.run(k, s, true, [&] { fill(3); });  // captured now
  EXPECT_EQ(g.counts().captured, 1);
  EXPECT_EQ(first_byte(), 3);
  g.run(k, s, true, [&] { fill(4); });  // replays the captured fill(3)
  EXPECT_EQ(g.counts().replayed, 1);
  EXPECT_EQ(first_byte(), 3);

  const GraphKey sync_key = key_of({12});
  auto fill_and_sync = [&](int v) {
    fill(v);
    ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(s));  // not capturable: invalidates a capture
  };
  g.run(sync_key, s, true, [&] { fill_and_sync(5); });  // eager
  g.run(sync_key, s, true, [&] { fill_and_sync(6); });  // capture fails, then eager
  EXPECT_EQ(g.counts().failed, 1);
  EXPECT_EQ(first_byte(), 6);
  g.run(sync_key, s, true, [&] { fill_and_sync(7); });  // eager from now on
  EXPECT_EQ(g.counts().failed, 1);
  EXPECT_EQ(g.counts().captured, 1);
  EXPECT_EQ(first_byte(), 7);

  // A library call that throws only inside a capture (the capture stays valid): the step reruns
  // eagerly, does not fail, and its key stays eager from then on.
  const GraphKey picky_key = key_of({13});
  auto fill_unless_capturing = [&](int v) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    ZIMAGE_CUDA_CHECK(cudaStreamIsCapturing(s, &status));
    fill(v);
    if (status == cudaStreamCaptureStatusActive) throw Error("a call that fails only while capturing");
  };
  g.run(picky_key, s, true, [&] { fill_unless_capturing(8); });  // eager
  g.run(picky_key, s, true, [&] { fill_unless_capturing(9); });  // capture throws, the eager rerun runs
  EXPECT_EQ(g.counts().failed, 2);
  EXPECT_EQ(first_byte(), 9);
  g.run(picky_key, s, true, [&] { fill_unless_capturing(10); });  // eager from now on
  EXPECT_EQ(g.counts().failed, 2);
  EXPECT_EQ(g.counts().captured, 1);
  EXPECT_EQ(first_byte(), 10);
}

// ZIMAGE_ATTENTION is read at every attention call, so a graph captured under automatic's choice
// must not replay once the variable names another version: the key holds the resolved version.
// bf16 only, where automatic (cudnn or mma) and v1_simt give other bits.
TEST(CudaStepGraphKey, AnAttentionVersionSetBetweenStepsIsCapturedAfreshNotReplayedOver) {
  ZIMAGE_REQUIRE_CUDA();
  const GoldenFile g = open_golden(testing::golden_path("tiny_single"));
  const ZImageWeights<float> w = load_weights<float>(g.config, *g.params);
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  // ZIMAGE_ATTENTION as it was, whatever happens below (later tests in this program read it).
  struct RestoreEnv {
    const char* old = std::getenv("ZIMAGE_ATTENTION");
    std::string saved = old ? old : "";
    ~RestoreEnv() {
      if (old)
        ::setenv("ZIMAGE_ATTENTION", saved.c_str(), 1);
      else
        ::unsetenv("ZIMAGE_ATTENTION");
    }
  } restore;
  ::unsetenv("ZIMAGE_ATTENTION");
  gpu::CudaOptions opts;
  opts.dtype = DType::BF16;
  opts.graph = true;
  gpu::CudaModel m(w, opts);
  const gpu::AttentionVersion automatic = gpu::resolve_attention(
      gpu::AttentionVersion::automatic, DType::BF16, g.config.head_dim(), 3 * int64_t(g.config.dim), g.config.dim);
  // Eager, then (when cuDNN grew its workspace in the first step: a new key) eager again, capture,
  // replay, all under automatic's version.
  for (int i = 0; i < 4; ++i) m.forward(in);
  ASSERT_GE(m.graph_counts().captured, 1) << "no graph was captured: the test would not see a stale replay";
  ::setenv("ZIMAGE_ATTENTION", "v1_simt", 1);
  gpu::CudaOptions eager_opts = opts;
  eager_opts.graph = false;
  const auto want = gpu::CudaModel(w, eager_opts).forward(in);
  const int64_t replays_before = m.graph_counts().replayed;
  const auto got = m.forward(in);
  const int64_t diff = bitwise_differences(got, want);
  std::printf("  automatic runs %s; after ZIMAGE_ATTENTION=v1_simt: %lld values differ from an eager v1_simt step\n",
              gpu::attention_version_name(automatic), (long long)diff);
  EXPECT_EQ(diff, 0);
  if (automatic != gpu::AttentionVersion::v1_simt) {
    EXPECT_EQ(m.graph_counts().replayed, replays_before) << "the graph of another attention version was replayed";
  }
}

// The step profile's parts: its counters are named after them (bench rows, the GPU check's record).
TEST(StepProfileParts, EveryPartHasItsCounterName) {
  std::set<std::string> names;
  for (int k = 0; k < gpu::StepProfile::kParts; ++k) names.insert(gpu::StepProfile::part_name(gpu::StepProfile::Part(k)));
  EXPECT_EQ(names, (std::set<std::string>{"gemm", "attention", "norms", "qk_norm_rope", "swiglu"}));
}

// With the profile on, a forward of tiny_batch2 (masked, two items) times each of its parts, runs
// eagerly (events would be captured into a graph), and computes bitwise what it computes without.
TEST(CudaStepProfile, EveryPartIsTimedAndTheSamplesAreUnchanged) {
  ZIMAGE_REQUIRE_CUDA();
  const GoldenFile g = open_golden(testing::golden_path("tiny_batch2"));
  const ZImageWeights<float> w = load_weights<float>(g.config, *g.params);
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  gpu::CudaOptions o;
  o.dtype = DType::BF16;
  gpu::CudaModel m(w, o);
  const auto want = m.forward(in);
  gpu::StepProfile& p = m.runtime().profile();
  p.enable(true);
  const gpu::GraphCounts before = m.graph_counts();  // the first step: eager
  const auto got = m.forward(in);
  const size_t intervals = p.intervals();
  const auto ms = p.collect();
  p.enable(false);
  // Graphs off for the profiled step (step_graph.h: launched as queued, not counted as a graph
  // step): without the profile this second step of the key would have been captured.
  EXPECT_EQ(m.graph_counts().captured, before.captured) << "a profiled step must not be captured";
  EXPECT_EQ(m.graph_counts().replayed, before.replayed) << "a profiled step must not be replayed";
  EXPECT_EQ(bitwise_differences(got, want), 0) << "the profile changed the samples";
  const int64_t blocks = g.config.n_refiner_layers * 2 + g.config.n_layers;
  // Per block 4 GEMMs (+1 adaLN when modulated), 1 attention, 1 qk_norm_rope, 1 swiglu, 2 norms.
  EXPECT_GE(intervals, size_t(9 * blocks)) << "fewer intervals than the blocks' calls";
  for (int k = 0; k < gpu::StepProfile::kParts; ++k) {
    const auto part = gpu::StepProfile::Part(k);
    std::printf("  %s: %.4f ms\n", gpu::StepProfile::part_name(part), ms[size_t(k)]);
    EXPECT_GT(ms[size_t(k)], 0.0) << gpu::StepProfile::part_name(part) << " was not timed";
  }
  EXPECT_EQ(p.intervals(), 0u) << "collect() must start over";
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaStepGraph,
                         ::testing::Combine(::testing::Values("tiny_single", "tiny_batch2"),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + testing::dtype_tag(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace zimage
