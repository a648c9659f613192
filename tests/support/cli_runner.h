// Running the zimage CLI from a test: exit status, stderr and stdout, through
// per-process files so parallel ctest runs do not mix.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace zimage::testing {

struct CliResult {
  int status;  // the exit status; 128 + the signal when it was killed
  std::string err, out;
};

// Runs `zimage ARGS` (ARGS as the shell reads them).
inline CliResult run_zimage(const std::string& args) {
  const std::string stem = (std::filesystem::path(::testing::TempDir()) /
                            ("zimage_cli_run_" + std::to_string(::getpid()))).string();
  const std::string o = stem + ".out", e = stem + ".err";
  const int raw = std::system((std::string(ZIMAGE_CLI) + " " + args + " >" + o + " 2>" + e).c_str());
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  CliResult r{WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw), read(e), read(o)};
  std::filesystem::remove(o);
  std::filesystem::remove(e);
  return r;
}

// `r` is a refusal of bad input: exit status 2 and one line on stderr that names `needle` (printed).
inline void expect_refusal(const CliResult& r, const std::string& needle) {
  std::printf("  exit %d: %s", r.status, r.err.c_str());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "error does not name '" << needle << "': " << r.err;
}

// A scratch folder for one test process.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const std::filesystem::path d =
      std::filesystem::path(::testing::TempDir()) / ("zimage_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

// A file's bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A pipeline folder that can encode prompts: golden/models/pipeline_tiny's transformer, vae and
// scheduler with the tiny Qwen3 of golden/text_encoder/tiny_te (hidden 32 = the tiny DiT's
// cap_feat_dim) and the test tokenizer, linked into scratch_dir(tag).
inline std::filesystem::path tiny_text_pipeline(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path d = scratch_dir(tag);
  const fs::path src = fs::path(ZIMAGE_GOLDEN_DIR) / "models" / "pipeline_tiny";
  for (const char* sub : {"transformer", "vae", "scheduler"})
    if (!fs::exists(d / sub)) fs::create_directory_symlink(src / sub, d / sub);
  fs::copy_file(src / "model_index.json", d / "model_index.json", fs::copy_options::overwrite_existing);
  const fs::path te = fs::path(ZIMAGE_GOLDEN_DIR) / "text_encoder";
  if (!fs::exists(d / "text_encoder")) fs::create_directory_symlink(te / "tiny_te", d / "text_encoder");
  if (!fs::exists(d / "tokenizer")) fs::create_directory_symlink(te / "tokenizer", d / "tokenizer");
  return d;
}

// A pipeline folder with only a text encoder: golden/text_encoder's tiny_te (the tiny Qwen3 saved by
// transformers) and the test tokenizer, copied (fresh each call) into scratch_dir(tag).
inline std::filesystem::path text_encoder_pipeline(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path d = scratch_dir(tag);
  const fs::path te = fs::path(ZIMAGE_GOLDEN_DIR) / "text_encoder";
  fs::remove_all(d / "text_encoder");
  fs::remove_all(d / "tokenizer");
  fs::copy(te / "tiny_te", d / "text_encoder", fs::copy_options::recursive);
  fs::copy(te / "tokenizer", d / "tokenizer", fs::copy_options::recursive);
  return d;
}

}  // namespace zimage::testing
