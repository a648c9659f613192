// zimage sweep end to end on the tiny pipeline (golden/models/pipeline_tiny with the tiny Qwen3 of
// golden/text_encoder and the test tokenizer): the grid's files (images, contact sheet of the
// layout's size, results.csv and results.json with one line per cell), each cell the very image
// `zimage generate` makes with the same options, the measures against the baseline (a shift equal
// to the scheduler's gives the baseline's image; skipping the context refiner leaves the prompt
// embedding and moves the refined caption), resume (finished cells skipped, a removed record run
// again), and bad input as one line, exit 2, with nothing written.
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/bitmap_font.h"
#include "io/contact_sheet.h"
#include "io/png.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '\n') out.push_back(cur), cur.clear();
    else cur += c;
  }
  return out;
}

const std::string kCommon = " --prompt 'a red fox' --height 32 --width 32 --steps 2 --sheet-cell 64";
const std::string kGrid = " --vary shift=1,3 --vary skip-context-refiner=off,on --seeds 0-1";

struct Sweep {
  fs::path pipe, out;
  testing::CliResult r;
  json results;
};

// One sweep into a fresh folder, shared by the tests that read it.
const Sweep& sweep() {
  static const Sweep s = [] {
    Sweep s;
    s.pipe = testing::tiny_text_pipeline("sweep_pipe");
    s.out = testing::scratch_dir("sweep_out") / "grid";
    fs::remove_all(s.out);
    s.r = testing::run_zimage("sweep --model " + s.pipe.string() + kCommon + kGrid + " --out " + s.out.string());
    if (s.r.status == 0) s.results = json::parse(testing::slurp(s.out / "results.json"));
    return s;
  }();
  return s;
}

TEST(CliSweep, Grid_1prompt_2x2knobs_2seeds_WritesEveryFile) {
  const Sweep& s = sweep();
  std::printf("%s", s.r.err.c_str());
  ASSERT_EQ(s.r.status, 0) << s.r.err;
  // 1 baseline row + 2 x 2 knob rows, 2 seeds: 10 cells, progress with an ETA for each.
  EXPECT_EQ(count(s.r.err, "ETA"), 10u);
  EXPECT_EQ(count(s.r.err, "[10/10]"), 1u);
  ASSERT_EQ(s.results["cells"].size(), 10u);
  for (const auto& c : s.results["cells"]) {
    EXPECT_EQ(c["status"], "ok");
    const Image8 img = read_png((s.out / c["image"].get<std::string>()).string());
    EXPECT_EQ(img.height, 32);
    EXPECT_EQ(img.width, 32);
  }
  // results.csv: a header and one line per cell, each with the header's field count (no field
  // of this sweep holds a comma).
  const auto csv = lines(testing::slurp(s.out / "results.csv"));
  ASSERT_EQ(csv.size(), 11u);
  EXPECT_EQ(csv[0],
            "row,prompt_index,prompt,shift,skip-context-refiner,seed,status,reused,image,seconds,latent_mean,latent_std,"
            "image_mean_r,image_mean_g,image_mean_b,image_std_r,image_std_g,image_std_b,mad_to_baseline,"
            "embedding_cos_to_baseline,refined_cos_to_baseline,caption_tokens");
  const size_t fields = count(csv[0], ",") + 1;
  for (size_t i = 1; i < csv.size(); ++i) EXPECT_EQ(count(csv[i], ",") + 1, fields) << csv[i];
  EXPECT_EQ(csv[1].rfind("0,0,a red fox,baseline,baseline,0,ok,0,cells/row000_seed0.png,", 0), 0u) << csv[1];
  // The image statistics are those of the image on disk (population std over its pixels).
  for (const auto& c : s.results["cells"]) {
    const Image8 img = read_png((s.out / c["image"].get<std::string>()).string());
    const int64_t n = img.height * img.width;
    for (int ch = 0; ch < 3; ++ch) {
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < n; ++i) sum += img.pixels[size_t(i * 3 + ch)];
      const double mean = sum / double(n);
      for (int64_t i = 0; i < n; ++i) sq += (img.pixels[size_t(i * 3 + ch)] - mean) * (img.pixels[size_t(i * 3 + ch)] - mean);
      EXPECT_NEAR(c["image_mean"][ch].get<double>(), mean, 1e-9);
      EXPECT_NEAR(c["image_std"][ch].get<double>(), std::sqrt(sq / double(n)), 1e-9);
    }
  }
  // The contact sheet: 5 rows, 2 columns, 64 px cells, of the layout's size.
  ContactSheet layout;
  layout.title = "t";
  layout.column_labels = {"seed 0", "seed 1"};
  layout.row_labels.assign(5, "r");
  const Image8 blank{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 0)};
  layout.cells.assign(5, {&blank, &blank});
  const auto [h, w] = contact_sheet_size(layout, 64);
  // Wide enough for the longest row label (docs/experiments.md): its text plus two gaps at scale 1.
  const int64_t label_width = text_width("shift=1 skip-context-refiner=off", 1) + 8;
  const Image8 sheet = read_png((s.out / "contact_sheet.png").string());
  EXPECT_EQ(sheet.height, h);
  EXPECT_EQ(sheet.width, std::max(w, label_width));
  EXPECT_GT(label_width, w);  // so this case checks the widening
  EXPECT_GE(sheet.width, 2 * 64);
  EXPECT_GE(sheet.height, 5 * 64);
}

const json& cell(const json& results, const std::string& shift, const std::string& skip, int seed) {
  for (const auto& c : results["cells"])
    if (!c["baseline"].get<bool>() && c["knobs"]["shift"] == shift && c["knobs"]["skip-context-refiner"] == skip &&
        c["seed"] == seed)
      return c;
  static const json none;
  return none;
}

TEST(CliSweep, EachCellIsWhatGenerateMakes_shift1_skipOn_seed1) {
  const Sweep& s = sweep();
  ASSERT_EQ(s.r.status, 0) << s.r.err;
  const json& c = cell(s.results, "1", "on", 1);
  ASSERT_FALSE(c.is_null());
  const fs::path png = s.out / "direct.png";
  const auto r = testing::run_zimage("generate --model " + s.pipe.string() +
                                     " --prompt 'a red fox' --height 32 --width 32 --steps 2 --shift 1"
                                     " --skip-context-refiner --seed 1 --out " + png.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string a = testing::slurp(png), b = testing::slurp(s.out / c["image"].get<std::string>());
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the sweep's cell differs from zimage generate with the same options";
  // And the baseline cell is generate with the options as given.
  const auto r0 = testing::run_zimage("generate --model " + s.pipe.string() +
                                      " --prompt 'a red fox' --height 32 --width 32 --steps 2 --seed 0 --out " + png.string());
  ASSERT_EQ(r0.status, 0) << r0.err;
  EXPECT_TRUE(testing::slurp(png) == testing::slurp(s.out / "cells" / "row000_seed0.png"));
}

TEST(CliSweep, MeasuresAgainstTheBaseline) {
  const Sweep& s = sweep();
  ASSERT_EQ(s.r.status, 0) << s.r.err;
  for (int seed : {0, 1}) {
    // shift 3 is the scheduler's own: the baseline's image, bit for bit.
    const json& same = cell(s.results, "3", "off", seed);
    EXPECT_EQ(same["mad_to_baseline"].get<double>(), 0.0);
    EXPECT_NEAR(same["embedding_cos_to_baseline"].get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(same["refined_cos_to_baseline"].get<double>(), 1.0, 1e-12);
    // shift 1 moves the image; the caption stream has no timestep in it: it does not move.
    const json& shifted = cell(s.results, "1", "off", seed);
    EXPECT_GT(shifted["mad_to_baseline"].get<double>(), 0.5);
    EXPECT_NEAR(shifted["refined_cos_to_baseline"].get<double>(), 1.0, 1e-12);
    // Skipping the context refiner: the same prompt embedding, a different refined caption.
    const json& skipped = cell(s.results, "3", "on", seed);
    EXPECT_NEAR(skipped["embedding_cos_to_baseline"].get<double>(), 1.0, 1e-12);
    const double drift = skipped["refined_cos_to_baseline"].get<double>();
    std::printf("  seed %d: refined caption cosine with/without the context refiner %.6f, image MAD %.3f\n", seed, drift,
                skipped["mad_to_baseline"].get<double>());
    EXPECT_LT(drift, 0.999);
    EXPECT_GT(skipped["mad_to_baseline"].get<double>(), 0.5);
  }
  for (const auto& c : s.results["cells"]) {
    EXPECT_GT(c["latent_std"].get<double>(), 0.0);
    EXPECT_EQ(c["caption_tokens"].get<int>(), s.results["cells"][0]["caption_tokens"].get<int>());
    for (int ch = 0; ch < 3; ++ch) {
      EXPECT_GE(c["image_mean"][ch].get<double>(), 0.0);
      EXPECT_LE(c["image_mean"][ch].get<double>(), 255.0);
    }
  }
}

TEST(CliSweep, ResumeSkipsFinishedCellsAndRunsARemovedOne) {
  const Sweep& s = sweep();
  ASSERT_EQ(s.r.status, 0) << s.r.err;
  const fs::path out = testing::scratch_dir("sweep_out") / "resume";
  fs::remove_all(out);
  fs::copy(s.out, out, fs::copy_options::recursive);
  fs::remove(out / "cells" / "row003_seed1.json");
  const std::string csv_before = testing::slurp(out / "results.csv");
  const auto r = testing::run_zimage("sweep --model " + s.pipe.string() + kCommon + kGrid + " --out " + out.string());
  std::printf("%s", r.err.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.err, "done before, skipped"), 9u);
  EXPECT_EQ(count(r.err, "ETA"), 1u);
  // Every field but the rerun cell's seconds is what it was: its measures against the baseline
  // come from the baseline's stored record (it was skipped) and must match the first run's.
  const auto a = lines(csv_before), b = lines(testing::slurp(out / "results.csv"));
  ASSERT_EQ(a.size(), b.size());
  auto without_seconds = [](const std::string& line) {  // field 10 (after row..image) is seconds
    std::vector<std::string> f;
    std::string cur;
    for (char c : line + ",") {
      if (c == ',') f.push_back(cur), cur.clear();
      else cur += c;
    }
    if (f.size() > 9) f[9] = "-";
    std::string j;
    for (const auto& x : f) j += x + ",";
    return j;
  };
  size_t seconds_changed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(without_seconds(a[i]), without_seconds(b[i]));
    seconds_changed += a[i] != b[i];
  }
  EXPECT_LE(seconds_changed, 1u);
  // Other settings into the same folder: refused, nothing changed.
  const std::string csv_after = testing::slurp(out / "results.csv"), config = testing::slurp(out / "sweep.json");
  const auto other = testing::run_zimage("sweep --model " + s.pipe.string() + kCommon + " --vary shift=1,2 --seeds 0-1 --out " +
                                         out.string());
  EXPECT_EQ(other.status, 2);
  EXPECT_NE(other.err.find("other settings"), std::string::npos) << other.err;
  EXPECT_EQ(testing::slurp(out / "results.csv"), csv_after);
  EXPECT_EQ(testing::slurp(out / "sweep.json"), config);
}

// Two prompts under CFG (one batched forward, the positive first: the probe measures the
// positive prompt), a think block varied: "@none" is the baseline's own options (its cells are
// reused, not run), a think block with content moves the prompt embedding.
TEST(CliSweep, TwoPromptsCfgThink_ReuseAndEmbeddingDrift) {
  const fs::path pipe = testing::tiny_text_pipeline("sweep_pipe");
  const fs::path out = testing::scratch_dir("sweep_out") / "think";
  fs::remove_all(out);
  const auto r = testing::run_zimage("sweep --model " + pipe.string() +
                                     " --prompt 'a red fox' --prompt 'a blue bird' --guidance 2 --height 32 --width 32"
                                     " --steps 1 --sheet-cell 32 --vary 'think=@none;x' --seeds 5 --out " + out.string());
  std::printf("%s", r.err.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.err, "its cell reused"), 2u);
  EXPECT_EQ(count(r.err, "ETA"), 4u);
  const json res = json::parse(testing::slurp(out / "results.json"));
  ASSERT_EQ(res["cells"].size(), 6u);
  for (int p = 0; p < 2; ++p) {
    const json &base = res["cells"][3 * p], &none = res["cells"][3 * p + 1], &think = res["cells"][3 * p + 2];
    EXPECT_TRUE(base["baseline"].get<bool>());
    EXPECT_EQ(none["knobs"]["think"], "@none");
    EXPECT_TRUE(none["same_as_baseline"].get<bool>());
    EXPECT_EQ(none["image"], base["image"]);
    EXPECT_EQ(think["knobs"]["think"], "x");
    const double cos = think["embedding_cos_to_baseline"].get<double>();
    std::printf("  prompt %d: embedding cosine with a think block 'x' %.6f, tokens %d vs %d\n", p, cos,
                think["caption_tokens"].get<int>(), base["caption_tokens"].get<int>());
    EXPECT_LT(cos, 0.99);
    EXPECT_GT(think["caption_tokens"].get<int>(), base["caption_tokens"].get<int>());
  }
  // Each prompt's rows are its own: the two baselines are different images.
  EXPECT_NE(testing::slurp(out / res["cells"][0]["image"].get<std::string>()), testing::slurp(out / res["cells"][3]["image"].get<std::string>()));
  // 6 rows x 1 seed on the sheet.
  ContactSheet layout;
  layout.title = "t";
  layout.column_labels = {"seed 5"};
  layout.row_labels.assign(6, "r");
  layout.cells.assign(6, {nullptr});
  EXPECT_EQ(read_png((out / "contact_sheet.png").string()).height, contact_sheet_size(layout, 32).first);
}

TEST(CliSweep, BadInputIsOneLineExit2AndNothingWritten) {
  const fs::path pipe = testing::tiny_text_pipeline("sweep_pipe");
  const fs::path out = testing::scratch_dir("sweep_out") / "bad";
  const std::string base = "sweep --model " + pipe.string() + " --prompt fox --height 32 --width 32 --steps 1";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --vary foo=1,2 --seeds 0", "--vary foo: not a knob"},
      {" --vary seed=1,2 --seeds 0", "--vary seed: not a knob"},
      {" --vary shift=abc --seeds 0", "--shift must be a finite number, not 'abc'"},
      {" --vary steps=1.5 --seeds 0", "--steps must be an integer"},
      {" --vary shift= --seeds 0", "empty grid"},
      {" --vary shift --seeds 0", "--vary 'shift'"},
      {" --vary shift=1 --seeds ''", "empty grid"},
      {" --vary shift=1 --seeds 3-1", "reversed"},
      {" --vary shift=1 --vary shift=2 --seeds 0", "given twice"},
      {" --vary skip-context-refiner=yes --seeds 0", "on or off"},
      {" --vary hidden-layer=-2,-99 --seeds 0", "hidden-layer=-99"},
      {" --vary height=32,33 --seeds 0", "height=33"},
      {" --vary padding-side=up --seeds 0", "--padding-side"},
      {" --vary shift=1", "--seeds"},
      {" --seeds 0 --num-images-per-prompt 2", "unknown argument --num-images-per-prompt"},
      {" --seeds 0 --sheet-cell 8", "--sheet-cell"},
      {" --seeds 0-9999 --vary shift=1,2,3 --sheet-cell 4096", "use a smaller --sheet-cell"},
  };
  for (const auto& [args, needle] : cases) {
    fs::remove_all(out);
    const auto r = testing::run_zimage(base + args + " --out " + out.string());
    std::printf("  %s -> exit %d: %s", args.c_str(), r.status, r.err.c_str());
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
    EXPECT_FALSE(fs::exists(out)) << args << ": the output folder was created";
  }
  // Missing prompt; a model folder without a text encoder.
  const auto r = testing::run_zimage("sweep --model " + pipe.string() + " --seeds 0 --out " + out.string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
  const fs::path tiny = fs::path(ZIMAGE_GOLDEN_DIR) / "models" / "pipeline_tiny";
  const auto r2 = testing::run_zimage("sweep --model " + tiny.string() + " --prompt fox --seeds 0 --out " + out.string());
  EXPECT_EQ(r2.status, 2);
  EXPECT_NE(r2.err.find("no text_encoder"), std::string::npos) << r2.err;
  EXPECT_FALSE(fs::exists(out));
  // --help prints the command's usage and exits 0.
  const auto h = testing::run_zimage("sweep --help");
  EXPECT_EQ(h.status, 0);
}

}  // namespace
}  // namespace zimage
