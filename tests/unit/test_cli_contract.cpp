// The CLI contract (issue 18 item 6), table-driven: `zimage CMD --help` prints that command's usage
// on stdout and exits 0 for every command; `zimage --help` lists every command; a number flag given
// something that is not a number of its kind is one line on stderr naming the flag and the value,
// exit 2 (never an uncaught std::stoi exception, exit 3).
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status;
  std::string out, err;
};

CliRun run(const std::string& args) {
  const fs::path base = fs::path(::testing::TempDir()) / ("zimage_contract_" + std::to_string(::getpid()));
  const std::string o = base.string() + ".out", e = base.string() + ".err";
  const int raw = std::system((std::string(ZIMAGE_CLI) + " " + args + " >" + o + " 2>" + e).c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  CliRun r{WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw), slurp(o), slurp(e)};
  fs::remove(o);
  fs::remove(e);
  return r;
}

const std::vector<std::string> kCommands = {"dit",     "validate", "rope-limits",     "generate", "encode",
                                            "inspect", "sweep",    "write-synthetic", "vae"};

TEST(CliContract, EveryCommandHelpExits0WithItsUsage) {
  for (const std::string& cmd : kCommands)
    for (const std::string& flag : {std::string("--help"), std::string("-h")}) {
      const CliRun r = run(cmd + " " + flag);
      std::printf("  zimage %s %s -> exit %d, %zu bytes of usage\n", cmd.c_str(), flag.c_str(), r.status, r.out.size());
      EXPECT_EQ(r.status, 0) << cmd << " " << flag << ": " << r.err;
      EXPECT_NE(r.out.find("zimage " + cmd), std::string::npos) << cmd << ": " << r.out;
      EXPECT_TRUE(r.err.empty()) << cmd << ": " << r.err;
    }
  // --help after other arguments, even incomplete ones, still answers with the usage.
  const CliRun r = run("generate --model x --help");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("zimage generate"), std::string::npos);
}

TEST(CliContract, TopLevelHelpListsEveryCommand) {
  const CliRun r = run("--help");
  EXPECT_EQ(r.status, 0);
  for (const std::string& cmd : kCommands) EXPECT_NE(r.out.find("zimage " + cmd), std::string::npos) << cmd;
  const CliRun u = run("bogus --help");
  EXPECT_EQ(u.status, 2);
  EXPECT_NE(u.err.find("unknown command 'bogus'"), std::string::npos) << u.err;
}

struct BadNumber {
  std::string args, flag, value;
};

// Every number flag of every command, with a value that is not a number of its kind. The checks
// run before any file is opened, so the paths need not exist.
TEST(CliContract, BadNumbersAreOneLineExit2NamingTheFlag) {
  const std::vector<BadNumber> cases = {
      {"write-synthetic --out /nonexistent/x --seed abc", "--seed", "abc"},
      {"write-synthetic --out /nonexistent/x --seed -1", "--seed", "-1"},
      {"write-synthetic --out /nonexistent/x --shard-gb five", "--shard-gb", "five"},
      {"write-synthetic --out /nonexistent/x --inputs /nonexistent/i --latent 1.5", "--latent", "1.5"},
      {"write-synthetic --out /nonexistent/x --inputs /nonexistent/i --caption 12x", "--caption", "12x"},
      {"generate --model /nonexistent --prompt-embeds /nonexistent/e --out /nonexistent/o.png --steps eight", "--steps",
       "eight"},
      {"generate --model /nonexistent --prompt-embeds /nonexistent/e --out /nonexistent/o.png --height 1e3",
       "--height", "1e3"},
      {"generate --model /nonexistent --prompt-embeds /nonexistent/e --out /nonexistent/o.png --guidance inf",
       "--guidance", "inf"},
      {"generate --model /nonexistent --prompt-embeds /nonexistent/e --out /nonexistent/o.png --shift 1e999", "--shift",
       "1e999"},
      {"generate --model /nonexistent --prompt-embeds /nonexistent/e --out /nonexistent/o.png --seed 99999999999999999999",
       "--seed", "99999999999999999999"},
      {"encode --model /nonexistent --prompt a --out /nonexistent/o --hidden-layer abc", "--hidden-layer", "abc"},
      {"encode --model /nonexistent --prompt a --out /nonexistent/o --max-sequence-length 5.5", "--max-sequence-length",
       "5.5"},
      {"sweep --model /nonexistent --prompt a --seeds 0 --out /nonexistent/o --vary steps=2,two", "--steps", "two"},
      {"sweep --model /nonexistent --prompt a --seeds 0-x --out /nonexistent/o", "--seeds", "x"},
      {"sweep --model /nonexistent --prompt a --seeds 0 --out /nonexistent/o --sheet-cell wide", "--sheet-cell", "wide"},
      {"vae decode --synthetic --random-latents 1,16,x,4", "--random-latents", "x"},
      {"vae decode --synthetic --random-latents 1,16,4,4 --tiled --tile-latent big", "--tile-latent", "big"},
      {"vae decode --synthetic --random-latents 1,16,4,4 --tiled --tile-overlap half", "--tile-overlap", "half"},
  };
  for (const BadNumber& c : cases) {
    const CliRun r = run(c.args);
    std::printf("  %s -> exit %d: %s", c.args.c_str(), r.status, r.err.c_str());
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.flag), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find("'" + c.value + "'"), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace zimage
