// golden/sdpa_fp32_peer.safetensors (tools/golden/dump_sdpa_peer.py): torch's own fp32 SDPA error
// against its fp64 SDPA at the CUDA attention test's shapes (B 1, H 2, D 128, L 1025 / 4128 /
// 4608), and the inputs regenerated bit for bit with TorchCpuGenerator. Shared by the CPU test of
// the inputs (tests/golden/test_sdpa_peer_golden.cpp) and the fp32 peer-rule test of
// flash_attention (tests/cuda/test_cuda_attention.cpp).
#pragma once
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "numerics/tolerance.h"
#include "pipeline/torch_generator.h"
#include "support/golden_values.h"
#include "support/goldens.h"
#include "validation/golden_file.h"

namespace zimage::testing {

inline const std::string& sdpa_peer_path() {
  static const std::string p = golden_path("sdpa_fp32_peer");
  return p;
}

// The golden, with its format, kind and provenance keys checked and every tensor screened.
inline const std::shared_ptr<SafetensorsFile>& sdpa_peer_golden() {
  static const std::shared_ptr<SafetensorsFile> f = [] {
    const GoldenHeader h = golden_header(sdpa_peer_path(), "sdpa_peer",
                                         {"torch_version", "torch_cpu_capability", "date", "script", "dtype",
                                          "reference_dtype", "command", "threads", "attention_backend", "sdpa_peer"});
    for (const auto& name : h.file->names()) screen_golden_tensor(sdpa_peer_path(), h.file->view(name));
    return h.file;
  }();
  return f;
}

inline nlohmann::json sdpa_peer_record(int64_t L) {
  const auto all = nlohmann::json::parse(sdpa_peer_golden()->metadata().at("sdpa_peer"));
  const std::string key = "L" + std::to_string(L);
  ZIMAGE_CHECK(all.contains(key), sdpa_peer_path() + ": no record for L " + std::to_string(L));
  return all.at(key);
}

// The capability torch ran randn under (the dump refuses anything but AVX2 / AVX512).
inline TorchCpuCapability sdpa_peer_capability() {
  const std::string c = sdpa_peer_golden()->metadata().at("torch_cpu_capability");
  return (c == "AVX2" || c == "AVX512") ? TorchCpuCapability::Avx2 : TorchCpuCapability::Default;
}

struct SdpaPeerInputs {
  Tensor<float> q, k, v;  // [B, L, H, D]
};

// torch.randn(3 L H D, generator=Generator().manual_seed(seed), dtype=float32) * 2, viewed as
// [3, B, L, H, D] (one contiguous draw: TorchCpuGenerator::randn, bit for bit).
inline SdpaPeerInputs sdpa_peer_inputs(const nlohmann::json& rec) {
  const Shape s = rec.at("shape").get<Shape>();
  const int64_t n = shape_numel(s);
  std::vector<float> x(size_t(3 * n));
  TorchCpuGenerator g(rec.at("seed").get<uint64_t>());
  g.randn(x.data(), 3 * n, sdpa_peer_capability());
  for (float& e : x) e *= 2.0f;  // exact
  auto part = [&](int64_t i) { return Tensor<float>(s, std::vector<float>(x.begin() + i * n, x.begin() + (i + 1) * n)); };
  return {part(0), part(1), part(2)};
}

// torch's recorded comparison (rel_rms, max_n, worst) as a Comparison for passes_peer.
inline numerics::Comparison recorded_comparison(const nlohmann::json& c) {
  numerics::Comparison r;
  r.n = c.at("n").get<int64_t>();
  r.nonfinite = c.at("nonfinite").get<int64_t>();
  r.rel_rms = c.at("rel_rms").get<double>();
  r.max_n = c.at("max_n").get<double>();
  r.worst = c.at("worst").get<int64_t>();
  r.worst_a = c.at("worst_a").get<double>();
  r.worst_r = c.at("worst_r").get<double>();
  r.ref_rms = c.at("ref_rms").get<double>();
  return r;
}

// The chain of one SDPA (the same ops test_cuda_attention's T3 / T4 cases use).
inline std::vector<numerics::Op> sdpa_ops(int64_t L, int64_t D) {
  return {{"q k^T", 1, double(D), false}, {"softmax", 2, double(L), true}, {"p v", 1, double(L), false}};
}

}  // namespace zimage::testing
