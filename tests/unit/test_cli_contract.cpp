// The CLI contract (README, "Using it"), table-driven: `zimage CMD --help` prints that command's usage
// on stdout and exits 0 for every command; `zimage --help` lists every command; a number flag given
// something that is not a number of its kind is one line on stderr naming the flag and the value,
// exit 2 (never an uncaught std::stoi exception, exit 3); every other kind of bad input (unknown flag,
// flag without its value, stray argument, missing required argument, value not among the choices, path
// that does not exist) is one line naming it, exit 2, for every command.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/choices.h"
#include "support/cli_runner.h"
#include "support/expect_errors.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

using CliRun = testing::CliResult;
using testing::run_zimage;

const std::vector<std::string> kCommands = {"dit",     "validate", "rope-limits",     "generate", "encode",
                                            "inspect", "sweep",    "write-synthetic", "vae"};

TEST(CliContract, EveryCommandHelpExits0WithItsUsage) {
  for (const std::string& cmd : kCommands)
    for (const std::string& flag : {std::string("--help"), std::string("-h")}) {
      const CliRun r = run_zimage(cmd + " " + flag);
      std::printf("  zimage %s %s -> exit %d, %zu bytes of usage\n", cmd.c_str(), flag.c_str(), r.status, r.out.size());
      EXPECT_EQ(r.status, 0) << cmd << " " << flag << ": " << r.err;
      EXPECT_NE(r.out.find("zimage " + cmd), std::string::npos) << cmd << ": " << r.out;
      EXPECT_TRUE(r.err.empty()) << cmd << ": " << r.err;
    }
  // --help after other arguments, even incomplete ones, still answers with the usage.
  const CliRun r = run_zimage("generate --model x --help");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("zimage generate"), std::string::npos);
}

TEST(CliContract, TopLevelHelpListsEveryCommand) {
  const CliRun r = run_zimage("--help");
  EXPECT_EQ(r.status, 0);
  for (const std::string& cmd : kCommands) EXPECT_NE(r.out.find("zimage " + cmd), std::string::npos) << cmd;
  const CliRun u = run_zimage("bogus --help");
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
    const CliRun r = run_zimage(c.args);
    std::printf("  %s -> exit %d: %s", c.args.c_str(), r.status, r.err.c_str());
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.flag), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find("'" + c.value + "'"), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
  }
}

// Every kind of bad input, for every command: one line on stderr naming what was wrong, exit 2.
// Paths under /nonexistent: the checks before any file is read, and the first file read, name it.
enum class Bad { UnknownFlag, MissingValue, StrayArgument, MissingRequired, BadChoice, MissingPath };
const char* bad_name(Bad k) {
  static const char* names[] = {"unknown flag", "flag without its value", "stray argument",
                                "missing required argument", "value not among the choices", "path that does not exist"};
  return names[int(k)];
}

struct BadInput {
  std::string cmd;  // as kCommands names it; vae's subcommands as "vae decode" etc.
  Bad kind;
  std::string args;                 // after `zimage CMD`
  std::vector<std::string> named;  // what the one line must name
};

const std::vector<BadInput>& bad_inputs() {
  static const std::vector<BadInput> t = {
      {"dit", Bad::UnknownFlag, "--model /nonexistent --bogus 1", {"unknown argument --bogus"}},
      {"dit", Bad::MissingValue, "--inputs a --output b --model", {"--model", "needs a value"}},
      {"dit", Bad::StrayArgument, "stray --model /nonexistent", {"'stray'"}},
      {"dit", Bad::MissingRequired, "--inputs a --output b", {"missing required argument --model"}},
      {"dit", Bad::BadChoice, "--model /nonexistent --inputs a --output b --dtype half", {"--dtype", "'half'"}},
      {"dit", Bad::MissingPath, "--model /nonexistent/m --inputs a --output b", {"/nonexistent/m"}},
      {"validate", Bad::UnknownFlag, "--bogus 1", {"unknown argument --bogus"}},
      {"validate", Bad::MissingValue, "--goldens", {"--goldens", "needs a value"}},
      {"validate", Bad::StrayArgument, "stray", {"'stray'"}},
      {"validate", Bad::BadChoice, "--dtype half", {"--dtype", "'half'"}},
      {"validate", Bad::MissingPath, "--goldens /nonexistent/g.safetensors", {"/nonexistent/g.safetensors"}},
      {"rope-limits", Bad::UnknownFlag, "--model /nonexistent --bogus 1", {"unknown argument --bogus"}},
      {"rope-limits", Bad::MissingValue, "--model", {"--model", "needs a value"}},
      {"rope-limits", Bad::StrayArgument, "--model /nonexistent stray", {"'stray'"}},
      {"rope-limits", Bad::MissingRequired, "", {"missing required argument --model"}},
      {"rope-limits", Bad::MissingPath, "--model /nonexistent/m", {"/nonexistent/m"}},
      {"generate", Bad::UnknownFlag, "--model /nonexistent --bogus 1", {"unknown argument --bogus"}},
      {"generate", Bad::MissingValue, "--model /nonexistent --prompt-embeds e --out", {"--out", "needs a value"}},
      {"generate", Bad::StrayArgument, "stray.png --model /nonexistent", {"'stray.png'"}},
      {"generate", Bad::MissingRequired, "--prompt-embeds e --out o.png", {"missing required argument --model"}},
      {"generate", Bad::BadChoice, "--model /nonexistent --prompt-embeds e --out o.png --weights disk",
       {"--weights", "'disk'"}},
      {"generate", Bad::MissingPath, "--model /nonexistent/p --prompt-embeds e --out o.png", {"/nonexistent/p"}},
      {"encode", Bad::UnknownFlag, "--model /nonexistent --bogus 1", {"unknown argument --bogus"}},
      {"encode", Bad::MissingValue, "--model /nonexistent --prompt a --out", {"--out", "needs a value"}},
      {"encode", Bad::StrayArgument, "a --model /nonexistent", {"'a'"}},
      {"encode", Bad::MissingRequired, "--prompt a --out o", {"missing required argument --model"}},
      {"encode", Bad::BadChoice, "--model /nonexistent --prompt a --out o --padding-side middle",
       {"--padding-side", "'middle'"}},
      {"encode", Bad::MissingPath, "--model /nonexistent/p --prompt a --out o", {"/nonexistent/p"}},
      {"inspect", Bad::UnknownFlag, "/nonexistent --bogus", {"unknown argument --bogus"}},
      {"inspect", Bad::StrayArgument, "/nonexistent/a /nonexistent/b", {"'/nonexistent/b'"}},
      {"inspect", Bad::MissingRequired, "--no-values", {"missing DIR|FILE"}},
      {"inspect", Bad::MissingPath, "/nonexistent/d", {"/nonexistent/d"}},
      {"sweep", Bad::UnknownFlag, "--model /nonexistent --bogus 1", {"unknown argument --bogus"}},
      {"sweep", Bad::MissingValue, "--model /nonexistent --prompt a --seeds 0 --out", {"--out", "needs a value"}},
      {"sweep", Bad::StrayArgument, "stray --model /nonexistent", {"'stray'"}},
      {"sweep", Bad::MissingRequired, "--prompt a --seeds 0 --out o", {"missing required argument --model"}},
      {"sweep", Bad::BadChoice, "--model /nonexistent --prompt a --seeds 0 --out o --vary bogus=1", {"--vary", "bogus"}},
      {"sweep", Bad::MissingPath, "--model /nonexistent/p --prompt a --seeds 0 --out o", {"/nonexistent/p"}},
      {"write-synthetic", Bad::UnknownFlag, "--out /nonexistent/o --bogus 1", {"unknown argument --bogus"}},
      {"write-synthetic", Bad::MissingValue, "--out", {"--out", "needs a value"}},
      {"write-synthetic", Bad::StrayArgument, "stray --out /nonexistent/o", {"'stray'"}},
      {"write-synthetic", Bad::MissingRequired, "--dtype float32", {"missing required argument --out"}},
      {"write-synthetic", Bad::BadChoice, "--out /nonexistent/o --dtype half", {"--dtype", "'half'"}},
      {"write-synthetic", Bad::MissingPath, "--out /nonexistent/o --config /nonexistent/c.json",
       {"/nonexistent/c.json"}},
      {"vae decode", Bad::UnknownFlag, "--synthetic --bogus 1", {"unknown argument --bogus"}},
      {"vae decode", Bad::MissingValue, "--synthetic --out", {"--out", "needs a value"}},
      {"vae decode", Bad::StrayArgument, "stray --synthetic", {"'stray'"}},
      {"vae decode", Bad::MissingRequired, "--synthetic --out o.png", {"--latents", "--random-latents"}},
      {"vae decode", Bad::BadChoice, "--synthetic --random-latents 1,16,4,4 --out o.png --dtype half",
       {"--dtype", "'half'"}},
      {"vae decode", Bad::MissingPath, "--vae /nonexistent/v --latents l --out o.png", {"/nonexistent/v"}},
      {"vae encode", Bad::UnknownFlag, "--synthetic --bogus 1", {"unknown argument --bogus"}},
      {"vae encode", Bad::MissingValue, "--synthetic --image", {"--image", "needs a value"}},
      {"vae encode", Bad::StrayArgument, "stray --synthetic", {"'stray'"}},
      {"vae encode", Bad::MissingRequired, "--synthetic --out o", {"missing required argument --image"}},
      {"vae encode", Bad::BadChoice, "--synthetic --image i.png --out o --dtype half", {"--dtype", "'half'"}},
      {"vae encode", Bad::MissingPath, "--vae /nonexistent/v --image i.png --out o", {"/nonexistent/v"}},
      {"vae validate", Bad::UnknownFlag, "--bogus 1", {"unknown argument --bogus"}},
      {"vae validate", Bad::MissingValue, "--golden", {"--golden", "needs a value"}},
      {"vae validate", Bad::StrayArgument, "stray", {"'stray'"}},
      {"vae validate", Bad::MissingRequired, "", {"--golden FILE"}},
      {"vae validate", Bad::BadChoice, "--dtype half", {"--dtype", "'half'"}},
      {"vae validate", Bad::MissingPath, "--golden /nonexistent/g.safetensors", {"/nonexistent/g.safetensors"}},
      {"vae", Bad::BadChoice, "bogus", {"unknown subcommand 'bogus'"}},
  };
  return t;
}

TEST(CliContract, EveryKindOfBadInputIsOneLineExit2) {
  for (const BadInput& c : bad_inputs()) {
    const CliRun r = run_zimage(c.cmd + " " + c.args);
    std::printf("  [%s] zimage %s %s -> exit %d: %s", bad_name(c.kind), c.cmd.c_str(), c.args.c_str(), r.status,
                r.err.c_str());
    EXPECT_EQ(r.status, 2) << c.cmd << " " << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.cmd << " " << c.args << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << c.cmd << " " << c.args << "\n" << r.out;
    for (const std::string& n : c.named) EXPECT_NE(r.err.find(n), std::string::npos) << c.cmd << " " << c.args << "\n" << r.err;
  }
}

// The table covers every command (vae by each subcommand) with every kind of bad input it can get:
// a command missing from it, or a kind left out without a reason here, fails.
TEST(CliContract, BadInputTableCoversEveryCommandAndKind) {
  const std::map<std::string, std::vector<Bad>> not_applicable = {
      {"validate", {Bad::MissingRequired}},         // every argument has a default (all shipped goldens)
      {"rope-limits", {Bad::BadChoice}},            // no option with choices
      {"inspect", {Bad::MissingValue, Bad::BadChoice}},  // switches only
  };
  std::vector<std::string> cmds;
  for (const std::string& c : kCommands)
    if (c == "vae") cmds.insert(cmds.end(), {"vae decode", "vae encode", "vae validate"});
    else cmds.push_back(c);
  for (const std::string& cmd : cmds)
    for (Bad k : {Bad::UnknownFlag, Bad::MissingValue, Bad::StrayArgument, Bad::MissingRequired, Bad::BadChoice,
                  Bad::MissingPath}) {
      const bool covered = std::any_of(bad_inputs().begin(), bad_inputs().end(),
                                       [&](const BadInput& c) { return c.cmd == cmd && c.kind == k; });
      auto na = not_applicable.find(cmd);
      const bool exempt = na != not_applicable.end() && std::count(na->second.begin(), na->second.end(), k);
      EXPECT_TRUE(covered != exempt) << cmd << ": " << bad_name(k) << (exempt ? " is exempt but has a case" : " has no case");
    }
}

// core/choices.h, behind every option and variable with a fixed set of words: the list reads
// "a", "a or b", "a, b or c"; a refusal names the option or variable it came from and the value.
enum class Fruit { apple, pear, plum, quince };
constexpr ChoiceTable<Fruit, 3> kFruits{{{Fruit::apple, "apple"}, {Fruit::pear, "pear"}, {Fruit::plum, "plum"}}};

TEST(Choices, RefusalNamesWhatTheWordsAndTheValue) {
  EXPECT_EQ(choices_text({"a"}), "a");
  EXPECT_EQ(choices_text({"a", "b"}), "a or b");
  EXPECT_EQ(choices_text({"a", "b", "c"}), "a, b or c");
  EXPECT_EQ(parse_choice(kFruits, "pear", "--fruit"), Fruit::pear);
  EXPECT_EQ(testing::error_of([] { parse_choice(kFruits, "Pear", "--fruit"); }),
            "--fruit must be apple, pear or plum, not 'Pear'");
  EXPECT_EQ(testing::error_of([] { parse_choice(kFruits, "", "--fruit"); }),
            "--fruit must be apple, pear or plum, not ''");
  EXPECT_STREQ(choice_name(kFruits, Fruit::plum), "plum");
  EXPECT_STREQ(choice_name(kFruits, Fruit::quince), "?");
  require_choice("cuda", {"cpu", "cuda"}, "--device");
  EXPECT_EQ(testing::error_of([] {
              require_choice("tpu", {"cpu", "cuda"}, "--device");
            }),
            "--device must be cpu or cuda, not 'tpu'");
}

TEST(Choices, EnvironmentUnsetOrEmptyGivesTheDefaultAndABadWordNamesTheVariable) {
  const char* var = "ZIMAGE_TEST_CHOICE_FRUIT";
  ::unsetenv(var);
  EXPECT_EQ(choice_from_env(kFruits, var, Fruit::quince), Fruit::quince);
  ::setenv(var, "", 1);
  EXPECT_EQ(choice_from_env(kFruits, var, Fruit::quince), Fruit::quince);
  ::setenv(var, "plum", 1);
  EXPECT_EQ(choice_from_env(kFruits, var, Fruit::quince), Fruit::plum);
  ::setenv(var, "fig", 1);
  EXPECT_EQ(testing::error_of([&] { choice_from_env(kFruits, var, Fruit::quince); }),
            "ZIMAGE_TEST_CHOICE_FRUIT must be apple, pear or plum, not 'fig'");
  ::unsetenv(var);
}

}  // namespace
}  // namespace zimage
