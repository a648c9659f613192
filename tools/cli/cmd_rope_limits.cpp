// zimage rope-limits: what a config's RoPE tables can address (reads only
// DIR/config.json, so it works on a download without loading weights).
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "dit/rope_limits.h"

namespace zimage::cli {

int cmd_rope_limits(const Args& args) {
  allow_only(args, {"--model", "--check-finite"});
  const std::string path = (std::filesystem::path(args.required("--model")) / "config.json").string();
  const ZImageConfig cfg = ZImageConfig::from_file(path);
  std::printf("%s: %s", path.c_str(), describe_rope_limits(cfg).c_str());
  return 0;
}

}  // namespace zimage::cli
