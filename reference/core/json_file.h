// Reading a JSON file (config.json, an index, tokenizer.json) with the
// project's one-line errors: "<path>: cannot open[ <what>]" and
// "<path>: not valid JSON: <parser message on one line>".
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace zimage {

inline nlohmann::json read_json_file(const std::string& path, const std::string& what = "") {
  std::ifstream in(path);
  ZIMAGE_CHECK(in, path + ": cannot open" + (what.empty() ? "" : " " + what));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n' || c == '\r') c = ' ';
    throw Error(path + ": not valid JSON: " + msg);
  }
}

}  // namespace zimage
