// Shared by the fuzz targets: the contract every reference parser promises is
// "a malformed input is a zimage::Error with a one-line message". Anything
// else (another exception type, a sanitizer report, a multi-line message, an
// invariant broken after a successful parse) is a finding: fail() aborts so
// libFuzzer records the input as a crash artifact.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace zimage::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

#define ZIMAGE_FUZZ_REQUIRE(cond, msg)                                                  \
  do {                                                                                   \
    if (!(cond)) ::zimage::fuzz::fail(std::string(#cond " failed: ") + std::string(msg)); \
  } while (0)

// The message of a zimage::Error must be one non-empty line.
inline void check_message(const Error& e) {
  const std::string msg = e.what();
  ZIMAGE_FUZZ_REQUIRE(!msg.empty(), "empty zimage::Error message");
  ZIMAGE_FUZZ_REQUIRE(msg.find_first_of("\r\n") == std::string::npos, "zimage::Error message is not one line: " + msg);
}

// A file whose contents each run replaces, without touching the disk where
// possible: a memfd opened by name through /proc/self/fd/N (the loaders under
// test take paths). Falls back to a regular file `fallback` when memfd_create
// is not available.
class InputFile {
 public:
  explicit InputFile(const std::string& fallback) {
    fd_ = ::memfd_create("zimage_fuzz_input", MFD_CLOEXEC);
    if (fd_ >= 0) {
      path_ = "/proc/self/fd/" + std::to_string(fd_);
    } else {
      path_ = fallback;
      fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd_ < 0) fail("cannot create " + path_);
    }
  }
  const std::string& path() const { return path_; }
  bool in_memory() const { return path_.rfind("/proc/self/fd/", 0) == 0; }
  void write(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) fail("ftruncate " + path_);
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, off_t(done));
      if (n <= 0) fail("pwrite " + path_);
      done += size_t(n);
    }
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// "$TMPDIR/zimage_fuzz_<stem>.<pid>.json" (TMPDIR unset or empty: /tmp): InputFile's fallback.
inline std::string fallback_json_path(const std::string& stem) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/zimage_fuzz_" + stem + "." + std::to_string(::getpid()) + ".json";
}

// The two readings of one JSON input that a JSON-reading parser offers: `from_file(path)`, the
// project's loader, on `file` holding the bytes (JSON syntax errors included), and
// `from_json(document)`. Every refusal must be a one-line zimage::Error and both must refuse the
// same inputs. Returns both readings and the document when both accept; nothing when both refuse.
// Findings name the loader (`loader`) and the kind of input (`what`: "config", "tokenizer").
template <class T>
struct Readings {
  nlohmann::json document;
  T from_file, from_json;
};
template <class T, class FromFile, class FromJson>
std::optional<Readings<T>> read_both_ways(InputFile& file, const uint8_t* data, size_t size, FromFile from_file,
                                          FromJson from_json, const std::string& loader, const std::string& what) {
  // 1. The file loader.
  file.write(data, size);
  std::optional<T> loaded;
  try {
    loaded = from_file(file.path());
  } catch (const Error& e) {
    check_message(e);
  }
  // 2. from_json on the parsed document (a syntax error here must be one the loader refused too).
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ZIMAGE_FUZZ_REQUIRE(!loaded, loader + " accepted a document json::parse refuses");
    return std::nullopt;
  }
  std::optional<T> parsed;
  try {
    parsed = from_json(j);
  } catch (const Error& e) {
    check_message(e);
    ZIMAGE_FUZZ_REQUIRE(!loaded, loader + " accepted a " + what + " from_json refuses");
    return std::nullopt;
  }
  ZIMAGE_FUZZ_REQUIRE(loaded, loader + " and from_json disagree");
  return Readings<T>{j, std::move(*loaded), std::move(*parsed)};
}

}  // namespace zimage::fuzz
