// The lookup of the module tables (dit/, vae/, text_encoder/ module_table.cpp): each row names the
// module paths it covers with a regex over the whole path, and runs them through run_float /
// run_double.
#pragma once
#include <optional>
#include <regex>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "numerics/op_chain.h"

namespace zimage::numerics {

// One row of a module table: the paths it covers, their op chain (ops, nullptr: no budget of its
// own) and their runners (nullptr: none). OpsArgs is what the table's op chains read (config,
// sizes, the path's groups), RunArgs<T> what its runners read (the golden, the recorded input).
// The text encoder's and the VAE's tables are made of these; the DiT's rows also name an input.
template <class OpsArgs, template <class> class RunArgs>
struct ModuleRow {
  using OpsFn = Ops (*)(const OpsArgs&);
  template <class T>
  using Runner = std::optional<Tensor<T>> (*)(const RunArgs<T>&);

  std::regex pattern;
  OpsFn ops;
  Runner<float> run_float;
  Runner<double> run_double;
};

// A row whose runner is one generic lambda, instantiated for float and double:
// module_row<Row>(pattern, ops, run).
template <class Row>
inline constexpr auto module_row = [](const char* pattern, typename Row::OpsFn ops, auto run) {
  return Row{std::regex(pattern), ops, run, run};
};

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
