// A JSON value for a one-line message ("... must be an integer, got array [1,[...]]").
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace zimage {

// Scalars as JSON text; lists and objects one level deep, nested ones shown as [...] / {...}
// (json::dump() recurses, so a deeply nested value in a file would overflow the stack). A list or
// object is cut after the first element that takes it past `max_chars`, ending ",...".
inline std::string json_brief(const nlohmann::json& v, size_t max_chars = std::string::npos) {
  if (!v.is_structured()) return v.dump();
  std::string r(v.is_array() ? "[" : "{");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (r.size() > 1) r += ",";
    if (v.is_object()) r += nlohmann::json(it.key()).dump() + ":";
    r += it->is_array() ? "[...]" : it->is_object() ? "{...}" : it->dump();
    if (r.size() > max_chars) return r + ",...";
  }
  return r + (v.is_array() ? "]" : "}");
}

}  // namespace zimage
