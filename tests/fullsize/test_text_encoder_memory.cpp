// Memory of a 512-token encode with Qwen3-4B (docs/text_encoder.md):
// a synthetic full-size checkpoint (Qwen3-4B's config.json, bf16 shards with
// an index, "model." names as Qwen3ForCausalLM saves them, 8.0 GB) is written
// once to $ZIMAGE_TE_MEMORY_DIR (default: the temp dir), then
// `zimage encode --max-sequence-length 512` runs on a prompt of more than 512
// tokens in a child process; its peak resident set (getrusage of the child)
// must stay under 12 GB. The checkpoint is written by a forked child and
// encode is exec'd from this (small) process and measured with wait4, so
// neither the writer's memory nor this process's leaks into the figure. Weights stay mapped in their bf16 file and each layer
// is converted to fp32 when it runs, its pages released afterwards.
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iterator>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/synthetic.h"
#include "support/cli_runner.h"
#include "support/test_support.h"
#include "text_encoder/qwen3_model.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

constexpr const char* kQwen3_4bConfig = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 2560, "initializer_range": 0.02, "intermediate_size": 9728,
  "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
  "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// Writes the synthetic checkpoint in ~2 GB bf16 shards (one shard in memory at a time).
void write_checkpoint(const fs::path& dir) {
  fs::create_directories(dir);
  const Qwen3Config cfg = Qwen3Config::from_json(nlohmann::json::parse(kQwen3_4bConfig), "Qwen3-4B config");
  const auto shapes = qwen3_parameter_shapes(cfg);
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<std::vector<std::pair<std::string, Shape>>> shards(1);
  int64_t bytes = 0;
  for (const auto& [name, shape] : shapes) {
    const int64_t b = shape_numel(shape) * 2;
    if (bytes + b > (int64_t(2) << 30) && !shards.back().empty()) shards.emplace_back(), bytes = 0;
    shards.back().push_back({name, shape});
    bytes += b;
  }
  for (size_t s = 0; s < shards.size(); ++s) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    SafetensorsWriter w;
    for (const auto& [name, shape] : shards[s]) {
      Tensor<float> t(shape);
      const bool norm = name.find("norm") != std::string::npos;
      const double scale = norm ? 0.2 : name == "embed_tokens.weight" ? 1.0 : 1.0 / std::sqrt(double(shape.back()));
      synthetic_fill(7, name, norm ? 1.0 : 0.0, scale, t.ptr(), t.numel());
      w.add("model." + name, t, DType::BF16);
      weight_map["model." + name] = file;
    }
    w.write((dir / file).string());
  }
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"metadata", {}}, {"weight_map", weight_map}}.dump(1);
  std::ofstream(dir / "config.json") << kQwen3_4bConfig;
}

TEST(TextEncoderMemory, Qwen3_4B_512TokensUnder12GB) {
  const char* env = std::getenv("ZIMAGE_TE_MEMORY_DIR");
  const fs::path root = env ? fs::path(env) : fs::temp_directory_path() / "zimage_qwen3_4b_synthetic";
  const fs::path te = root / "text_encoder";
  auto t0 = std::chrono::steady_clock::now();
  if (!fs::exists(te / "model.safetensors.index.json")) {
    const pid_t w = fork();
    ASSERT_GE(w, 0);
    if (w == 0) {
      try {
        write_checkpoint(te);
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
    int st = 0;
    waitpid(w, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "writing the checkpoint failed";
  }
  const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::remove_all(root / "tokenizer");
  fs::copy(fs::path(ZIMAGE_GOLDEN_DIR) / "text_encoder" / "tokenizer", root / "tokenizer", fs::copy_options::recursive);
  int64_t file_bytes = 0;
  for (const auto& e : fs::directory_iterator(te)) file_bytes += int64_t(e.file_size());
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "a red fox in fresh snow, ";
  const std::string out = (root / "embeds.safetensors").string(), errf = (root / "encode_stderr.txt").string();
  t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = open(errf.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execl(ZIMAGE_CLI, "zimage", "encode", "--model", root.c_str(), "--max-sequence-length", "512", "--prompt",
          prompt.c_str(), "--out", out.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  const double enc_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ifstream ein(errf);
  const std::string err((std::istreambuf_iterator<char>(ein)), std::istreambuf_iterator<char>());
  const double peak_gb = double(ru.ru_maxrss) * 1024.0 / 1e9;
  std::printf("  checkpoint %.2f GB (written in %.0f s); encode of 512 tokens: %.1f s, peak RSS %.2f GB (limit 12)\n  %s",
              double(file_bytes) / 1e9, write_s, enc_s, peak_gb, err.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  const auto f = SafetensorsFile::open(out);
  EXPECT_EQ(f->view("prompt_embeds.0").shape, (Shape{512, 2560}));
  EXPECT_LT(peak_gb, 12.0);
}

}  // namespace
}  // namespace zimage
