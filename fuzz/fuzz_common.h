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

}  // namespace zimage::fuzz
