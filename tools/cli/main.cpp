// zimage: the command-line front of the CPU reference.
//   zimage dit       --model DIR --inputs IN --output OUT [--dtype float32|float64] [--dump-activations ACTS]
//   zimage validate  [--goldens FILE ...] [--model DIR] [--dtype float64|float32]
//   zimage rope-limits --model DIR
//   zimage generate  --model PIPELINE_DIR --prompt-embeds FILE ... --out IMAGE.png
//   zimage sweep     --model PIPELINE_DIR --prompt TEXT --vary KNOB=V1,V2 --seeds 0-3 --out DIR
//   (and encode, inspect, write-synthetic, vae: `zimage --help` lists them all; `zimage CMD --help`
//   prints one command's usage and exits 0)
// Every user error is one line on stderr and exit status 2; a failed
// validation is exit status 1.
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace zimage::cli;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // zimage CMD ... --help (or -h) anywhere: that command's usage on stdout, exit 0.
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      if (!std::strcmp(argv[1], "vae")) {
        char help[] = "--help";
        char* vae_argv[] = {help};
        return cmd_vae(1, vae_argv);
      }
      const std::string usage = command_usage(argv[1]);
      if (usage.empty()) {
        std::fprintf(stderr, "zimage: error: unknown command '%s' (try: zimage --help)\n", argv[1]);
        return 2;
      }
      std::fputs(usage.c_str(), stdout);
      return 0;
    }
  try {
    if (!std::strcmp(argv[1], "vae")) return cmd_vae(argc - 2, argv + 2);  // own subcommands and switches
    if (!std::strcmp(argv[1], "inspect")) return cmd_inspect(argc - 2, argv + 2);  // a positional DIR|FILE
    const Args args = parse_args(argc - 2, argv + 2);
    const std::string cmd = argv[1];
    if (cmd == "dit") return cmd_dit(args);
    if (cmd == "validate") return cmd_validate(args);
    if (cmd == "rope-limits") return cmd_rope_limits(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "encode") return cmd_encode(args);
    if (cmd == "write-synthetic") return cmd_write_synthetic(args);
    if (cmd == "sweep") return cmd_sweep(args);
    throw zimage::Error("unknown command '" + cmd + "' (try: zimage --help)");
  } catch (const zimage::Error& e) {
    std::fprintf(stderr, "zimage: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zimage: internal error: %s\n", e.what());
    return 3;
  }
}
