#include <algorithm>

#include "cli.h"

namespace zimage::cli {

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    const std::string k = argv[i];
    ZIMAGE_CHECK(k.rfind("--", 0) == 0 && k.size() > 2, "unexpected argument '" + k + "'");
    if (std::find(kSwitches.begin(), kSwitches.end(), k) != kSwitches.end()) {
      a.values[k].push_back("on");
      continue;
    }
    ZIMAGE_CHECK(i + 1 < argc, "argument " + k + " needs a value");
    a.values[k].push_back(argv[++i]);
  }
  return a;
}

void allow_only(const Args& a, const std::vector<std::string>& known) {
  for (const auto& [k, v] : a.values) {
    bool ok = false;
    for (const auto& n : known) ok = ok || n == k;
    ZIMAGE_CHECK(ok, "unknown argument " + k + " (try: zimage --help)");
  }
}

}  // namespace zimage::cli
