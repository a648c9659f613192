// docs/layers.md, the layer index, checked against the tree: every reference function, golden
// tensor, CUDA twin, test and benchmark row a row names must exist where the row says, so the
// index cannot go stale. The cell format and the rules are in docs/layers.md.
// The checker returns a list of problems (row, column, what) instead of failing itself, so that
// CheckerCatchesOneWrongEntryPerColumn can run it on a table that is wrong on purpose.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

// The table's columns, in order (the names the problems use).
const std::vector<std::string> kColumns = {"layer", "module", "reference", "golden", "cuda", "tests", "benchmark"};
enum Col { kLayer, kModule, kReference, kGolden, kCuda, kTests, kBenchmark };

struct Row {
  int line = 0;
  std::vector<std::string> cells;
  const std::string& layer() const { return cells[kLayer]; }
};

struct Problem {
  std::string row, column, what;
};

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// The first table whose header row starts with "| layer |"; its rows up to the first line that is
// not a table row. A row with the wrong number of cells is a problem, and is dropped.
std::vector<Row> parse_table(const std::string& text, std::vector<Problem>& problems) {
  std::vector<Row> rows;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  bool in_table = false, past_separator = false;
  while (std::getline(in, line)) {
    ++n;
    const std::string t = trim(line);
    if (!in_table) {
      in_table = t.rfind("| layer |", 0) == 0;
      continue;
    }
    if (!past_separator) {
      past_separator = true;  // | --- | --- | ...
      continue;
    }
    if (t.empty() || t[0] != '|') break;
    std::vector<std::string> parts = split(t.substr(1, t.size() - 2), '|');
    Row r;
    r.line = n;
    for (const auto& p : parts) r.cells.push_back(trim(p));
    if (r.cells.size() != kColumns.size()) {
      problems.push_back({"line " + std::to_string(n), "table",
                          std::to_string(r.cells.size()) + " cells, expected " + std::to_string(kColumns.size())});
      continue;
    }
    rows.push_back(r);
  }
  if (rows.empty()) problems.push_back({"(table)", "table", "no table with a '| layer |' header, or no rows"});
  return rows;
}

// A `name` (`file`) or `file`: `tensor` entry.
struct Entry {
  std::string a, b;
};

// Entries of a cell, joined by ';'. "-" is no entry (a problem where the column needs one).
std::vector<Entry> entries(const Row& r, Col c, std::vector<Problem>& problems) {
  static const std::regex named(R"(^`([^`]+)`\s*\(`([^`]+)`\)$)");
  static const std::regex tensor(R"(^`([^`]+)`:\s*`([^`]+)`$)");
  const std::string& cell = r.cells[c];
  std::vector<Entry> out;
  if (cell == "-") {
    if (c == kReference || c == kTests) problems.push_back({r.layer(), kColumns[c], "must name at least one entry"});
    return out;
  }
  for (const auto& piece : split(cell, ';')) {
    const std::string p = trim(piece);
    std::smatch m;
    if (std::regex_match(p, m, c == kGolden ? tensor : named))
      out.push_back({m[1], m[2]});
    else
      problems.push_back({r.layer(), kColumns[c],
                          "cannot parse '" + p + "' (expected " +
                              (c == kGolden ? "`file`: `tensor`" : "`name` (`file`)") + ")"});
  }
  return out;
}

bool word_char(char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; }

// `word` in `text` with no identifier character on either side.
bool has_word(const std::string& text, const std::string& word) {
  if (word.empty()) return false;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool left = at == 0 || !word_char(text[at - 1]);
    const size_t end = at + word.size();
    const bool right = end >= text.size() || !word_char(text[end]);
    if (left && right) return true;
  }
  return false;
}

// Each `Twin:` comment with the further-indented comment lines under it (docs/layers.md).
std::vector<std::string> twin_blocks(const std::string& text) {
  std::vector<std::string> blocks;
  std::istringstream in(text);
  std::string line;
  bool open = false;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    const bool comment = t.rfind("//", 0) == 0;
    const size_t twin = t.find("Twin");
    if (comment && twin != std::string::npos && t.find(':', twin) != std::string::npos) {
      blocks.push_back(t);
      open = true;
    } else if (open && comment && t.compare(2, 2, "  ") == 0) {
      blocks.back() += "\n" + t;
    } else {
      open = false;
    }
  }
  return blocks;
}

// Suite and test of a gtest filter: [Instantiation/]Suite.Test[/param], with '*' wildcards.
// An empty test means the filter does not name one (Suite.*).
std::pair<std::string, std::string> suite_and_test(const std::string& filter) {
  const size_t dot = filter.find('.');
  std::string suite = filter.substr(0, dot);
  if (const size_t slash = suite.rfind('/'); slash != std::string::npos) suite = suite.substr(slash + 1);
  suite.erase(std::remove(suite.begin(), suite.end(), '*'), suite.end());
  std::string test = dot == std::string::npos ? "" : filter.substr(dot + 1);
  test = test.substr(0, test.find_first_of("/*"));
  return {suite, test};
}

class Tree {
 public:
  explicit Tree(fs::path root) : root_(std::move(root)) {}

  const std::string* text(const std::string& file) {
    auto it = texts_.find(file);
    if (it == texts_.end()) {
      std::optional<std::string> t;
      std::ifstream in(root_ / file, std::ios::binary);
      if (in && fs::is_regular_file(root_ / file)) t = std::string(std::istreambuf_iterator<char>(in), {});
      it = texts_.emplace(file, t).first;
    }
    return it->second ? &*it->second : nullptr;
  }

  // The golden's tensor names, or the reason it cannot be read.
  const std::set<std::string>* tensors(const std::string& file, std::string& why) {
    auto it = goldens_.find(file);
    if (it == goldens_.end()) {
      std::optional<std::set<std::string>> names;
      try {
        const auto f = SafetensorsFile::open((root_ / file).string());
        const auto v = f->names();
        names = std::set<std::string>(v.begin(), v.end());
      } catch (const std::exception& e) {
        golden_errors_[file] = e.what();
      }
      it = goldens_.emplace(file, names).first;
    }
    if (!it->second) why = golden_errors_[file];
    return it->second ? &*it->second : nullptr;
  }

  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
  std::map<std::string, std::optional<std::string>> texts_;
  std::map<std::string, std::optional<std::set<std::string>>> goldens_;
  std::map<std::string, std::string> golden_errors_;
};

struct CheckOptions {
  bool every_kernel_header_listed = true;  // off for the in-memory tables
  // Every kernel of cuda/kernels/ named in a CUDA cell has a `BM_Cuda...` row in some row of the
  // table (a kernel used by several layers is timed once).
  bool every_kernel_benchmarked = true;
};

std::vector<Problem> check_layer_index(const std::string& table, const fs::path& root, CheckOptions opts = {}) {
  std::vector<Problem> problems;
  Tree tree(root);
  const std::vector<Row> rows = parse_table(table, problems);
  std::set<std::string> layers, cuda_files;
  std::map<std::string, bool> kernel_benchmarked;  // "name (cuda/kernels/file)" -> a BM_Cuda row seen
  for (const Row& r : rows) {
    auto bad = [&](Col c, const std::string& what) { problems.push_back({r.layer(), kColumns[c], what}); };
    if (r.layer().empty()) bad(kLayer, "empty (line " + std::to_string(r.line) + ")");
    if (!layers.insert(r.layer()).second) bad(kLayer, "appears twice");
    if (r.cells[kModule].empty() || r.cells[kModule] == "-") bad(kModule, "names no module");

    std::vector<std::string> ref_functions;
    for (const Entry& e : entries(r, kReference, problems)) {
      ref_functions.push_back(e.a);
      const std::string* t = tree.text(e.b);
      if (!t) {
        bad(kReference, e.b + " does not exist");
        continue;
      }
      for (size_t from = 0;;) {  // Class::method: each part
        const size_t sep = e.a.find("::", from);
        const std::string part = e.a.substr(from, sep == std::string::npos ? std::string::npos : sep - from);
        if (!has_word(*t, part)) bad(kReference, e.b + " does not contain '" + part + "'");
        if (sep == std::string::npos) break;
        from = sep + 2;
      }
    }

    for (const Entry& e : entries(r, kGolden, problems)) {
      std::string why;
      const std::set<std::string>* names = tree.tensors(e.a, why);
      if (!names)
        bad(kGolden, e.a + " cannot be read: " + why);
      else if (!names->count(e.b))
        bad(kGolden, e.a + " holds no tensor '" + e.b + "'");
    }

    for (const Entry& e : entries(r, kCuda, problems)) {
      cuda_files.insert(e.b);
      const std::string* t = tree.text(e.b);
      if (!t) {
        bad(kCuda, e.b + " does not exist");
        continue;
      }
      if (!has_word(*t, e.a)) bad(kCuda, e.b + " does not contain '" + e.a + "'");
      bool named = false;
      for (const auto& block : twin_blocks(*t))
        for (const auto& f : ref_functions) named = named || has_word(block, f);
      if (!named) {
        std::string list;
        for (const auto& f : ref_functions) list += (list.empty() ? "" : ", ") + f;
        bad(kCuda, e.b + " has no Twin: comment naming the row's reference function (" + list + ")");
      }
    }

    for (const Entry& e : entries(r, kTests, problems)) {
      const std::string* t = tree.text(e.b);
      if (!t) {
        bad(kTests, e.b + " does not exist");
        continue;
      }
      const auto [suite, test] = suite_and_test(e.a);
      if (!has_word(*t, suite)) bad(kTests, e.b + " has no suite '" + suite + "' (filter " + e.a + ")");
      if (!test.empty() && !has_word(*t, test))
        bad(kTests, e.b + " has no test '" + test + "' (filter " + e.a + ")");
    }

    bool cuda_row = false;
    for (const Entry& e : entries(r, kBenchmark, problems)) {
      cuda_row = cuda_row || e.a.rfind("BM_Cuda", 0) == 0;
      const std::string* t = tree.text(e.b);
      if (!t)
        bad(kBenchmark, e.b + " does not exist");
      else if (!has_word(*t, e.a))
        bad(kBenchmark, e.b + " has no benchmark row '" + e.a + "'");
    }
    std::vector<Problem> ignored;  // the CUDA cell's format problems were reported above
    for (const Entry& e : entries(r, kCuda, ignored))
      if (e.b.rfind("cuda/kernels/", 0) == 0) kernel_benchmarked[e.a + " (" + e.b + ")"] |= cuda_row;
  }
  if (opts.every_kernel_benchmarked)
    for (const auto& [kernel, timed] : kernel_benchmarked)
      if (!timed) problems.push_back({"(table)", "benchmark", "kernel " + kernel + " has a BM_Cuda row in no row"});

  if (opts.every_kernel_header_listed) {
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(root / "cuda" / "kernels", ec)) {
      if (f.path().extension() != ".h") continue;
      const std::string rel = "cuda/kernels/" + f.path().filename().string();
      if (!cuda_files.count(rel)) problems.push_back({"(table)", "cuda", rel + " is in no row"});
    }
    if (ec) problems.push_back({"(table)", "cuda", "cannot list cuda/kernels: " + ec.message()});
  }
  return problems;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(LayerIndex, EveryCellMatchesTheTree) {
  const fs::path root = ZIMAGE_SOURCE_DIR;
  const fs::path doc = root / "docs" / "layers.md";
  ASSERT_TRUE(fs::is_regular_file(doc)) << doc << " is missing";
  const std::string table = read_text(doc);
  std::vector<Problem> parse_problems;
  const size_t n_rows = parse_table(table, parse_problems).size();
  std::cout << "docs/layers.md: " << n_rows << " rows\n";
  EXPECT_GE(n_rows, 40u) << "the index lost rows";
  for (const Problem& p : check_layer_index(table, root))
    ADD_FAILURE() << "docs/layers.md row '" << p.row << "', column " << p.column << ": " << p.what;
}

// The checker must be able to fail: one wrong entry per column (and one unparsable cell), each
// in a row that is otherwise right, gives exactly those problems and no others.
TEST(LayerIndex, CheckerCatchesOneWrongEntryPerColumn) {
  const std::string good_ref = "`rms_norm` (`reference/nn/norms.h`)";
  const std::string good_golden = "`golden/tiny_single.safetensors`: `layers.0.attention_norm1`";
  const std::string good_cuda = "`rms_norm_modulate` (`cuda/kernels/rms_norm_modulate.h`)";
  const std::string good_test = "`Cuda/RmsNormModulate.AgainstReference/*` (`tests/cuda/test_cuda_norms.cpp`)";
  const std::string good_bench = "`BM_RmsNorm` (`bench/bench_dit.cpp`)";
  auto row = [](const std::vector<std::string>& c) {
    std::string s = "|";
    for (const auto& x : c) s += " " + x + " |";
    return s + "\n";
  };
  const std::string m = "`RMSNorm`";
  std::string table = "| layer | module | reference | golden | cuda | tests | benchmark |\n"
                      "| --- | --- | --- | --- | --- | --- | --- |\n";
  table += row({"good", m, good_ref, good_golden, good_cuda, good_test, good_bench});
  table += row({"bad ref", m, good_ref + "; `no_such_function` (`reference/nn/norms.h`)", good_golden, good_cuda,
                good_test, good_bench});
  table += row({"bad golden", m, good_ref, "`golden/tiny_single.safetensors`: `layers.0.no_such_tensor`", good_cuda,
                good_test, good_bench});
  // A real kernel whose Twin: names timestep_embedding, not rms_norm.
  table += row({"bad cuda", m, good_ref, good_golden, "`timestep_embedding` (`cuda/kernels/timestep_embedding.h`)",
                good_test, good_bench});
  table += row({"bad tests", m, good_ref, good_golden, good_cuda,
                "`Cuda/NoSuchSuite.RmsNormModulate/*` (`tests/cuda/test_cuda_norms.cpp`)", good_bench});
  table += row({"bad benchmark", m, good_ref, good_golden, good_cuda, good_test, "`BM_NoSuchRow` (`bench/bench_dit.cpp`)"});
  table += row({"bad cell", m, "rms_norm in reference/nn/norms.h", good_golden, "-", good_test, "-"});
  table += "\nafter the table\n";

  const auto problems = check_layer_index(table, ZIMAGE_SOURCE_DIR,
                                          {.every_kernel_header_listed = false, .every_kernel_benchmarked = false});
  std::multiset<std::pair<std::string, std::string>> got;
  for (const Problem& p : problems) {
    std::cout << "  caught: row '" << p.row << "', column " << p.column << ": " << p.what << "\n";
    got.insert({p.row, p.column});
  }
  const std::multiset<std::pair<std::string, std::string>> want = {
      {"bad ref", "reference"}, {"bad golden", "golden"},       {"bad cuda", "cuda"},
      {"bad tests", "tests"},   {"bad benchmark", "benchmark"}, {"bad cell", "reference"}};
  EXPECT_EQ(got, want);
}

// A kernel that only CPU benchmarks time is caught; one BM_Cuda row in any row that names it is
// enough.
TEST(LayerIndex, AKernelWithoutACudaBenchmarkRowIsCaught) {
  const std::string ref = "`rms_norm` (`reference/nn/norms.h`)",
                    cuda = "`rms_norm_modulate` (`cuda/kernels/rms_norm_modulate.h`)";
  const std::string test = "`Cuda/RmsNormModulate.AgainstReference/*` (`tests/cuda/test_cuda_norms.cpp`)";
  const std::string head =
      "| layer | module | reference | golden | cuda | tests | benchmark |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n";
  const std::string cpu_only =
      "| a | `RMSNorm` | " + ref + " | - | " + cuda + " | " + test + " | `BM_RmsNorm` (`bench/bench_dit.cpp`) |\n";
  const std::string timed = "| b | `RMSNorm` | " + ref + " | - | " + cuda + " | " + test +
                            " | `BM_CudaRmsNormModulate` (`bench/cuda/bench_cuda_kernels.cpp`) |\n";
  const CheckOptions opts{.every_kernel_header_listed = false, .every_kernel_benchmarked = true};
  const auto problems = check_layer_index(head + cpu_only, ZIMAGE_SOURCE_DIR, opts);
  ASSERT_EQ(problems.size(), 1u);
  std::cout << "  caught: " << problems[0].what << "\n";
  EXPECT_EQ(problems[0].column, "benchmark");
  EXPECT_NE(problems[0].what.find("rms_norm_modulate"), std::string::npos) << problems[0].what;
  for (const Problem& p : check_layer_index(head + cpu_only + timed, ZIMAGE_SOURCE_DIR, opts))
    ADD_FAILURE() << "row '" << p.row << "', column " << p.column << ": " << p.what;
}

TEST(LayerIndex, ParserNamesMalformedRowsAndMissingFiles) {
  const std::string table =
      "| layer | module | reference | golden | cuda | tests | benchmark |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n"
      "| short row | x | y |\n"
      "| gone | `M` | `f` (`reference/no_such_file.h`) | `golden/no_such.safetensors`: `t` | `k` (`cuda/no_such.h`) "
      "| `S.T` (`tests/no_such.cpp`) | `BM_X` (`bench/no_such.cpp`) |\n";
  const auto problems = check_layer_index(table, ZIMAGE_SOURCE_DIR,
                                          {.every_kernel_header_listed = false, .every_kernel_benchmarked = false});
  std::multiset<std::pair<std::string, std::string>> got;
  for (const Problem& p : problems) got.insert({p.row, p.column});
  const std::multiset<std::pair<std::string, std::string>> want = {
      {"line 3", "table"}, {"gone", "reference"}, {"gone", "golden"},
      {"gone", "cuda"},    {"gone", "tests"},     {"gone", "benchmark"}};
  EXPECT_EQ(got, want);
}

TEST(LayerIndex, TwinBlocksAndFilters) {
  const auto blocks = twin_blocks(
      "// A kernel.\n"
      "// Twin: reference/a.h first_fn, then\n"
      "//       second_fn (continued).\n"
      "// Shapes: not part of it third_fn.\n"
      "// other  Twin: fourth_fn\n");
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_TRUE(has_word(blocks[0], "second_fn"));
  EXPECT_FALSE(has_word(blocks[0], "third_fn"));
  EXPECT_TRUE(has_word(blocks[1], "fourth_fn"));
  EXPECT_FALSE(has_word("group_norm_nhwc", "group_norm"));
  EXPECT_TRUE(has_word("x(group_norm)", "group_norm"));
  EXPECT_EQ(suite_and_test("Goldens/GoldenModuleT2.TeacherForcedWithinBudget/*t_embedder*"),
            std::make_pair(std::string("GoldenModuleT2"), std::string("TeacherForcedWithinBudget")));
  EXPECT_EQ(suite_and_test("PatchifyT0.*"), std::make_pair(std::string("PatchifyT0"), std::string("")));
  EXPECT_EQ(suite_and_test("*/RealGemm.WithinBudgetAgainstFp64/*"),
            std::make_pair(std::string("RealGemm"), std::string("WithinBudgetAgainstFp64")));
}

}  // namespace
}  // namespace zimage
