// Typed reads of a config file's keys, the one set every config parser uses (the DiT's, the
// VAE's, Qwen3's and the scheduler's). Each failure is one line that names the source (the
// file) and the key, with the value as the file has it, shortened:
//   "<source>: missing key 'dim'"
//   "<source>: key 'dim' must be an integer, got string \"x\""
//   "<source>: key 'dim' value 4294967296 does not fit an int"
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace zimage {

// A JSON value for a one-line message ("... must be an integer, got array [1,[...]]"): scalars as
// JSON text; lists and objects one level deep, nested ones shown as [...] / {...} (json::dump()
// recurses, so a deeply nested value in a file would overflow the stack). A list or object is
// cut after the first element that takes it past `max_chars`, ending ",...".
inline std::string json_brief(const nlohmann::json& v, size_t max_chars = 200) {
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

// The shortest round-trip text of a double, as JSON writes it (1e-05, 256.0).
inline std::string json_number_text(double v) { return nlohmann::json(v).dump(); }

// The key's value, or null when the key is absent.
inline const nlohmann::json* json_find(const nlohmann::json& j, const std::string& key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

inline const nlohmann::json& json_require(const nlohmann::json& j, const std::string& key, const std::string& source) {
  const nlohmann::json* v = json_find(j, key);
  ZIMAGE_CHECK(v, source + ": missing key '" + key + "'");
  return *v;
}

namespace json_fields_detail {
inline std::string got(const nlohmann::json& v) { return std::string(v.type_name()) + " " + json_brief(v); }
inline std::string key_must(const std::string& key, const std::string& source) {
  return source + ": key '" + key + "' must be ";
}
// True when v is a JSON integer that fits an int.
inline bool fits_int(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max());
  return v.is_number_integer() && std::in_range<int>(v.get<int64_t>());
}
}  // namespace json_fields_detail

// The value of `key` (named in the messages) as an int: a JSON integer in int's range.
inline int json_int(const nlohmann::json& v, const std::string& key, const std::string& source) {
  using namespace json_fields_detail;
  ZIMAGE_CHECK(v.is_number_integer(), key_must(key, source) + "an integer, got " + got(v));
  ZIMAGE_CHECK(fits_int(v), source + ": key '" + key + "' value " + json_brief(v) + " does not fit an int");
  return v.get<int>();
}

inline double json_number(const nlohmann::json& v, const std::string& key, const std::string& source) {
  ZIMAGE_CHECK(v.is_number(),
               json_fields_detail::key_must(key, source) + "a number, got " + json_fields_detail::got(v));
  return v.get<double>();
}

// A number that is neither infinite nor NaN (a JSON integer too large for a double is infinite).
inline double json_finite_number(const nlohmann::json& v, const std::string& key, const std::string& source) {
  ZIMAGE_CHECK(v.is_number() && std::isfinite(v.get<double>()),
               json_fields_detail::key_must(key, source) + "a finite number, got " + json_fields_detail::got(v));
  return v.get<double>();
}

inline bool json_bool(const nlohmann::json& v, const std::string& key, const std::string& source) {
  ZIMAGE_CHECK(v.is_boolean(),
               json_fields_detail::key_must(key, source) + "true or false, got " + json_fields_detail::got(v));
  return v.get<bool>();
}

inline std::vector<int> json_int_list(const nlohmann::json& v, const std::string& key, const std::string& source) {
  const std::string msg = json_fields_detail::key_must(key, source) + "a list of integers, got " + json_brief(v);
  ZIMAGE_CHECK(v.is_array(), msg);
  std::vector<int> out;
  for (const nlohmann::json& e : v) {
    ZIMAGE_CHECK(json_fields_detail::fits_int(e), msg);
    out.push_back(e.get<int>());
  }
  return out;
}

inline std::vector<std::string> json_string_list(const nlohmann::json& v, const std::string& key,
                                                 const std::string& source) {
  const std::string msg = json_fields_detail::key_must(key, source) + "a list of strings, got " + json_brief(v);
  ZIMAGE_CHECK(v.is_array(), msg);
  std::vector<std::string> out;
  for (const nlohmann::json& e : v) {
    ZIMAGE_CHECK(e.is_string(), msg);
    out.push_back(e.get<std::string>());
  }
  return out;
}

// The required key's value, typed: json_int(json_require(j, key, source), key, source), ...
inline int json_get_int(const nlohmann::json& j, const std::string& key, const std::string& source) {
  return json_int(json_require(j, key, source), key, source);
}
inline double json_get_number(const nlohmann::json& j, const std::string& key, const std::string& source) {
  return json_number(json_require(j, key, source), key, source);
}
inline bool json_get_bool(const nlohmann::json& j, const std::string& key, const std::string& source) {
  return json_bool(json_require(j, key, source), key, source);
}
inline std::vector<int> json_get_int_list(const nlohmann::json& j, const std::string& key, const std::string& source) {
  return json_int_list(json_require(j, key, source), key, source);
}

}  // namespace zimage
