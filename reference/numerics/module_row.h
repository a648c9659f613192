// The lookup of the module tables (dit/, vae/, text_encoder/ module_table.cpp): each row names the
// module paths it covers with a regex over the whole path, and runs them through run_float /
// run_double.
#pragma once
#include <regex>
#include <string>
#include <type_traits>
#include <vector>

namespace zimage::numerics {

// The first row of `rows` whose `pattern` matches all of `path` (its groups left in `m`), or
// nullptr when none does.
template <class Row>
const Row* match_row(const std::vector<Row>& rows, const std::string& path, std::smatch& m) {
  for (const Row& r : rows)
    if (std::regex_match(path, m, r.pattern)) return &r;
  return nullptr;
}

// The runner of `row` for T, its run_float or run_double (nullptr when there is no row, or the row
// has no runner).
template <class T, class Row>
auto runner_for(const Row* row) {
  if constexpr (std::is_same_v<T, float>) return row ? row->run_float : decltype(row->run_float){};
  else return row ? row->run_double : decltype(row->run_double){};
}

}  // namespace zimage::numerics
