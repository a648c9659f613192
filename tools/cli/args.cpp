#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cerrno>

#include "cli.h"

namespace zimage::cli {

namespace {
// The one unknown-flag check, for parse_args (ArgSpec::known) and allow_only.
void require_known(const std::string& k, const std::vector<std::string>& known, const std::string& who) {
  ZIMAGE_CHECK(std::find(known.begin(), known.end(), k) != known.end(),
               who + "unknown argument " + k + " (try: zimage --help)");
}
}  // namespace

Args parse_args(int argc, char** argv, const ArgSpec& spec) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || k.size() <= 2) {
      ZIMAGE_CHECK(int(a.positional.size()) < spec.max_positional, spec.who + "unexpected argument '" + k + "'");
      a.positional.push_back(k);
      continue;
    }
    if (!spec.known.empty()) require_known(k, spec.known, spec.who);
    if (std::find(spec.switches.begin(), spec.switches.end(), k) != spec.switches.end()) {
      a.values[k].push_back("on");
      continue;
    }
    ZIMAGE_CHECK(i + 1 < argc, spec.who + "argument " + k + " needs a value");
    a.values[k].push_back(argv[++i]);
  }
  return a;
}

void allow_only(const Args& a, const std::vector<std::string>& known, const std::string& who) {
  for (const auto& [k, v] : a.values) require_known(k, known, who);
}

int64_t parse_int_value(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long long x = v.empty() ? 0 : std::strtoll(v.c_str(), &end, 10);
  ZIMAGE_CHECK(!v.empty() && end == v.c_str() + v.size() && errno == 0,
               flag + " must be an integer, not '" + v + "'");
  return x;
}

double parse_number_value(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const double x = v.empty() ? 0 : std::strtod(v.c_str(), &end);
  ZIMAGE_CHECK(!v.empty() && end == v.c_str() + v.size() && errno == 0 && std::isfinite(x),
               flag + " must be a finite number, not '" + v + "'");
  return x;
}

uint64_t parse_seed_value(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const bool digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long long x = digits ? std::strtoull(v.c_str(), &end, 10) : 0;
  ZIMAGE_CHECK(digits && end == v.c_str() + v.size() && errno == 0,
               flag + " must be a non-negative integer below 2^64, not '" + v + "'");
  return x;
}

int64_t Args::get_int(const std::string& k, int64_t def) const { return has(k) ? parse_int_value(k, get(k)) : def; }
double Args::get_number(const std::string& k, double def) const { return has(k) ? parse_number_value(k, get(k)) : def; }
uint64_t Args::get_seed(const std::string& k, uint64_t def) const { return has(k) ? parse_seed_value(k, get(k)) : def; }

DitKnobs parse_dit_knobs(const Args& a) {
  DitKnobs k;
  if (a.has("--rope-scaling")) k.forward.rope_scaling = parse_rope_scaling(a.get("--rope-scaling"));
  if (a.has("--rope-extend")) {
    ZIMAGE_CHECK(!a.has("--rope-scaling") || k.forward.rope_scaling == RopeScaling::Extrapolate,
                 "--rope-extend is --rope-scaling extrapolate: it cannot be combined with --rope-scaling " +
                     a.get("--rope-scaling"));
    k.forward.rope_extend = true;
    k.forward.rope_scaling = RopeScaling::Extrapolate;
  }
  if (k.forward.rope_scaling == RopeScaling::Extrapolate) k.forward.rope_extend = true;
  k.forward.skip_context_refiner = a.has("--skip-context-refiner");
  if (a.has("--long-prompt-mode")) k.long_prompt.mode = parse_long_prompt_mode(a.get("--long-prompt-mode"));
  if (a.has("--long-prompt-target")) {
    ZIMAGE_CHECK(a.has("--long-prompt-mode"), "--long-prompt-target needs --long-prompt-mode");
    const int64_t n = a.get_int("--long-prompt-target", 0);
    ZIMAGE_CHECK(n > 0, "--long-prompt-target must be a positive number of tokens, not " + std::to_string(n));
    k.long_prompt.target = n;
  }
  return k;
}

std::string command_usage(const std::string& cmd) {
  const std::string usage = kUsage, head = "  zimage " + cmd + " ";
  std::string out;
  size_t pos = 0;
  while ((pos = usage.find(head, pos)) != std::string::npos) {  // a command may have several blocks
    size_t end = usage.find("\n  zimage ", pos + 1);
    end = end == std::string::npos ? usage.size() : end + 1;
    out += usage.substr(pos, end - pos);
    pos = end;
  }
  return out.empty() ? out : "usage:\n" + out;
}

}  // namespace zimage::cli
