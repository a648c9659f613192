// One error type for every failure a user can cause (bad file, bad tensor,
// bad argument). The message is one line and names what was wrong; the CLI
// prints it as `zimage: error: <message>` and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace zimage {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// ZIMAGE_CHECK(cond, msg-expression): throws zimage::Error(msg) when cond is false.
#define ZIMAGE_CHECK(cond, msg)                  \
  do {                                           \
    if (!(cond)) throw ::zimage::Error((msg));   \
  } while (0)

}  // namespace zimage
