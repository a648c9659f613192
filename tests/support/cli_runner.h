// Running the zimage CLI from a test: exit status and stderr, with a
// per-process stderr file so parallel ctest runs do not mix.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace zimage::testing {

struct CliResult {
  int status;
  std::string err;
};

inline CliResult run_zimage(const std::string& args) {
  const std::filesystem::path errf =
      std::filesystem::path(::testing::TempDir()) / ("zimage_cli_stderr_" + std::to_string(::getpid()) + ".txt");
  const std::string cmd = std::string(ZIMAGE_CLI) + " " + args + " >/dev/null 2>" + errf.string();
  const int raw = std::system(cmd.c_str());
  std::ifstream in(errf);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw), err};
}

// A scratch folder for one test process.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const std::filesystem::path d =
      std::filesystem::path(::testing::TempDir()) / ("zimage_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace zimage::testing
