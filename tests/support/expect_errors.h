// Checking the errors the library throws: a zimage::Error, one line, naming what is wrong.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace zimage::testing {

// The message of the zimage::Error f throws (EXPECTed to be one line); "" and a failure if none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a zimage::Error";
  return "";
}

}  // namespace zimage::testing

// The statement throws zimage::Error whose message contains `needle`.
#define EXPECT_THROW_MSG_HAS(stmt, needle)                                                        \
  do {                                                                                            \
    try {                                                                                         \
      (void)(stmt);                                                                               \
      ADD_FAILURE() << #stmt " did not throw";                                                    \
    } catch (const ::zimage::Error& e_) {                                                         \
      EXPECT_NE(std::string(e_.what()).find(needle), std::string::npos) << e_.what();            \
    }                                                                                             \
  } while (0)
