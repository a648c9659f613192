// zimage sweep: a grid of knob values and seeds, each cell one generate() run, to images, a contact
// sheet and a table (docs/experiments.md, "zimage sweep"). The grid and the measures are the
// library's (pipeline/sweep.h); this file maps knobs to generate's options, runs the cells, resumes,
// and writes the files. Every value of every cell is checked before anything is written.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iterator>
#include <type_traits>

#include "generate_setup.h"
#include "pipeline/pipeline_files.h"
#include "io/contact_sheet.h"
#include "pipeline/sweep.h"
#include "sweep_output.h"
#include "text_encoder/prompt_encoder.h"
#include "text_encoder/qwen3_model.h"
#include "dit/model_folder.h"

namespace zimage::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The options --vary takes (generate's, less the seed, the batch and the device: a cell is one image).
const std::vector<std::string> kVaryKnobs = {
    "height", "width", "steps", "guidance", "cfg-normalization", "cfg-truncation", "shift", "dtype", "weights",
    "attention", "rope-scaling", "rope-extend", "skip-context-refiner", "long-prompt-mode", "long-prompt-target",
    "hidden-layer", "hidden-layers", "hidden-layer-weights", "max-sequence-length", "think", "system-prompt",
    "padding-side", "negative-prompt"};
constexpr size_t kSweepMaxCells = 100000;
const std::vector<std::string> kSweepOwnFlags = {"--model", "--prompt", "--vary", "--seeds", "--out", "--sheet-cell"};

bool is_switch(const std::string& flag) {
  return std::find(kSwitches.begin(), kSwitches.end(), flag) != kSwitches.end();
}

// The baseline's generate options: the arguments less the sweep's own and the prompt.
Args baseline_args(const Args& a) {
  Args b = a;
  for (const auto& f : kSweepOwnFlags) b.values.erase(f);
  return b;
}

// The options of one cell: the baseline with the row's values, the prompt and the seed.
Args cell_args(const Args& base, const std::vector<SweepAxis>& axes, const SweepRow& row, const std::string& prompt,
               uint64_t seed) {
  Args c = base;
  for (size_t i = 0; i < row.values.size(); ++i) {
    const std::string flag = "--" + axes[i].knob, &v = row.values[i];
    if (v == kSweepNone) {
      c.values.erase(flag);
    } else if (is_switch(flag)) {
      ZIMAGE_CHECK(v == "on" || v == "off", "--vary " + axes[i].knob + ": values are on or off, not '" + v + "'");
      if (v == "on") c.values[flag] = {"on"};
      else c.values.erase(flag);
    } else {
      c.values[flag] = {v};
    }
  }
  c.values["--prompt"] = {prompt};
  c.values["--seed"] = {std::to_string(seed)};
  return c;
}

GenerateSetup cell_setup(const Args& c, const SweepRow& row, const std::vector<SweepAxis>& axes) {
  try {
    GenerateSetup s = parse_generate_setup(c);
    s.req.prompts = c.values.at("--prompt");
    if (c.has("--negative-prompt")) s.req.negative_prompts = {c.get("--negative-prompt")};
    return s;
  } catch (const Error& e) {
    throw Error("row '" + row.label(axes) + "': " + e.what());
  }
}

// What generate() checks before it loads anything, for one cell, without running it: sizes,
// schedule, long-prompt target, hidden layers against the text encoder's config.
void precheck(const PipelineFolder& pipe, const GenerateSetup& s, const Qwen3Config& te, const std::string& row) {
  try {
    const GenerateOptions& o = s.req.opt;
    ZIMAGE_CHECK(o.steps >= 1, "--steps must be at least 1, not " + std::to_string(o.steps));
    const Shape shape = pipeline_latent_shape(pipe.transformer.config, pipe.vae.config, 1, o.height, o.width);
    (void)pipeline_schedule(pipe.scheduler, o, shape);
    if (o.long_prompt.mode != LongPromptMode::None) (void)o.long_prompt.target_for(pipe.transformer.config);
    for (int k : s.req.prompt_options.encode_options().hidden_layers) (void)qwen3_hidden_index(te, k);
#ifdef ZIMAGE_WITH_CUDA
    if (s.device == "cuda") gpu::check_cuda_dit_options(pipe.transformer.config, s.cuda);  // --attention vs head_dim
#endif
  } catch (const Error& e) {
    throw Error("row '" + row + "': " + e.what());
  }
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

struct Cell {
  size_t row = 0;
  uint64_t seed = 0;
  fs::path image, record;  // record: the cell's JSON, written after the image (its presence = done)
};

Cell cell_of(const fs::path& out, size_t row, uint64_t seed) {
  char name[64];
  std::snprintf(name, sizeof name, "row%03zu_seed%llu", row, (unsigned long long)seed);
  return Cell{row, seed, out / "cells" / (std::string(name) + ".png"), out / "cells" / (std::string(name) + ".json")};
}

// One cell: generate, write the image, measure against the baseline's record (absent for the
// baseline itself), write the record. Returns the record.
template <class T>
json run_cell(const PipelineFolder& pipe, const GenerateSetup& s, const DeviceHooks& dev, const Cell& cell,
              const json* baseline) {
  CaptionProbe probe;
  GenerateHooks<T> hooks;
  hooks.warn = [](const std::string& w) { std::fprintf(stderr, "zimage: warning: %s\n", w.c_str()); };
  hooks.decode = dev.decode;
  hooks.text_encoder = dev.text_encoder;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights w) -> std::unique_ptr<DitModel<T>> {
    if constexpr (std::is_same_v<T, float>)
      if (dev.open_dit) return probe_captions<T>(dev.open_dit(f, w), &probe);
    return probe_captions<T>(open_dit_model<T>(f, w), &probe);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const Generated<T> g = generate<T>(pipe, s.req, hooks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json r = {{"row", cell.row}, {"seed", cell.seed}, {"seconds", secs}, {"dtype", s.dtype}, {"weights", g.weights}};
  if (g.nonfinite) {
    r["status"] = "non-finite: " + *g.nonfinite;
  } else {
    ZIMAGE_CHECK(g.images.size() == 1, "a sweep cell made " + std::to_string(g.images.size()) + " images");
    const Image8& img = g.images[0];
    write_png(cell.image.string(), img);
    const MeanStd lat = mean_std(g.latents);
    const ImageStats st = image_stats(img);
    r["status"] = "ok";
    r["image"] = cell.image.filename().string();
    r["latent_mean"] = lat.mean;
    r["latent_std"] = lat.std;
    r["image_mean"] = st.mean;
    r["image_std"] = st.std;
  }
  r["caption_tokens"] = probe.tokens;
  if (!baseline) {  // the baseline keeps its caption means for the rows after it
    r["embedding"] = probe.embedding;
    r["refined"] = probe.refined;
  }
  if (r["status"] == "ok" && (!baseline || baseline->value("status", "") == "ok")) {  // the baseline against itself
    const Image8 base = baseline ? read_png((cell.image.parent_path() / baseline->at("image").get<std::string>()).string())
                                 : g.images[0];
    const std::vector<double> e = baseline ? baseline->at("embedding").get<std::vector<double>>() : probe.embedding;
    const std::vector<double> c = baseline ? baseline->at("refined").get<std::vector<double>>() : probe.refined;
    const auto mad = mean_abs_diff(g.images[0], base);
    const auto ce = cosine_similarity(probe.embedding, e);
    const auto cr = cosine_similarity(probe.refined, c);
    if (mad) r["mad_to_baseline"] = *mad;
    if (ce) r["embedding_cos_to_baseline"] = *ce;
    if (cr) r["refined_cos_to_baseline"] = *cr;
  }
  write_text_atomically(cell.record, json_text(r));
  return r;
}

}  // namespace

int cmd_sweep(const Args& args) {
  std::vector<std::string> known = kSweepOwnFlags;
  known.push_back("--negative-prompt");
  for (const auto& f : generate_option_flags())
    if (f != "--seed" && f != "--num-images-per-prompt") known.push_back(f);
  allow_only(args, known);
  ZIMAGE_CHECK(args.has("--prompt"), "missing required argument --prompt (a sweep encodes its prompts)");
  ZIMAGE_CHECK(args.has("--seeds"), "missing required argument --seeds (e.g. 0-3)");
  SweepGrid grid;
  grid.prompts = args.values.at("--prompt");
  ZIMAGE_CHECK(!args.has("--negative-prompt") || args.values.at("--negative-prompt").size() == 1,
               "--negative-prompt is given more than once (a sweep takes one; vary it with --vary negative-prompt=...)");
  grid.seeds = parse_seed_list(args.get("--seeds"));
  const int64_t cell_px = args.get_int("--sheet-cell", 256);
  ZIMAGE_CHECK(cell_px >= 16 && cell_px <= 4096, "--sheet-cell must be 16 .. 4096 pixels, not " + std::to_string(cell_px));
  if (args.has("--vary"))
    for (const auto& spec : args.values.at("--vary")) {
      SweepAxis a = parse_sweep_axis(spec);
      ZIMAGE_CHECK(std::find(kVaryKnobs.begin(), kVaryKnobs.end(), a.knob) != kVaryKnobs.end(),
                   "--vary " + a.knob + ": not a knob a sweep can vary (zimage sweep --help lists them)");
      for (const auto& b : grid.axes) ZIMAGE_CHECK(b.knob != a.knob, "--vary " + a.knob + " is given twice");
      grid.axes.push_back(std::move(a));
    }
  grid.rows = sweep_rows(int(grid.prompts.size()), grid.axes);
  ZIMAGE_CHECK(grid.rows.size() * grid.seeds.size() <= kSweepMaxCells,
               "the grid has " + std::to_string(grid.rows.size()) + " rows x " + std::to_string(grid.seeds.size()) +
                   " seeds, more than " + std::to_string(kSweepMaxCells) + " cells");
  {  // the sheet must fit in memory: at most 2^28 pixels (768 MB as RGB)
    ContactSheet shape;
    shape.title = "t";
    shape.column_labels.assign(grid.seeds.size(), "");
    shape.row_labels.assign(grid.rows.size(), "");
    shape.cells.assign(grid.rows.size(), std::vector<const Image8*>(grid.seeds.size(), nullptr));
    const auto [h, w] = contact_sheet_size(shape, cell_px);
    ZIMAGE_CHECK(h * w <= (int64_t(1) << 28), "the contact sheet would be " + std::to_string(h) + "x" + std::to_string(w) +
                                                  " pixels (at most 2^28): use a smaller --sheet-cell");
  }
  const Args base = baseline_args(args);

  // Every cell's options parsed, then checked against the model's configs, before anything is written.
  std::vector<GenerateSetup> setups;
  std::vector<Args> row_args;
  for (const auto& row : grid.rows) {
    row_args.push_back(cell_args(base, grid.axes, row, grid.prompts[size_t(row.prompt)], grid.seeds[0]));
    setups.push_back(cell_setup(row_args.back(), row, grid.axes));
  }
  const PipelineFolder pipe = open_pipeline_folder(args.required("--model"));
  ZIMAGE_CHECK(PromptEncoder::pipeline_has_text_encoder(pipe.dir),
               "--model " + pipe.dir + ": no text_encoder/config.json and tokenizer/tokenizer.json (a sweep encodes its prompts)");
  const Qwen3Config te = Qwen3Config::from_file((fs::path(pipe.dir) / "text_encoder" / "config.json").string());
  for (size_t r = 0; r < grid.rows.size(); ++r) precheck(pipe, setups[r], te, grid.rows[r].label(grid.axes));

  // The output folder: new, or one holding this very sweep (then finished cells are skipped).
  const fs::path out = args.required("--out");
  std::error_code ec;
  json settings = {{"model", fs::absolute(pipe.dir, ec).lexically_normal().string()}, {"prompts", grid.prompts},
                   {"seeds", grid.seeds}, {"baseline", json::object()}, {"vary", json::array()}};
  for (const auto& [k, v] : base.values) settings["baseline"][k] = v;
  for (const auto& a : grid.axes) settings["vary"].push_back({{"knob", a.knob}, {"values", a.values}});
  const std::string settings_text = json_text(settings);
  const bool out_exists = fs::exists(out, ec);
  ZIMAGE_CHECK(!out_exists || fs::is_directory(out, ec), "--out " + out.string() + " exists and is not a directory");
  const fs::path settings_path = out / "sweep.json";
  if (fs::exists(settings_path, ec)) {
    std::ifstream f(settings_path);
    const std::string held((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ZIMAGE_CHECK(held == settings_text, "--out " + out.string() +
                                            " holds a sweep of other settings (its sweep.json differs): use a new folder "
                                            "to run this one");
  } else {
    ZIMAGE_CHECK(!out_exists || fs::is_empty(out, ec), "--out " + out.string() + " is not empty and holds no sweep.json: use a new folder");
  }
  fs::create_directories(out / "cells", ec);
  ZIMAGE_CHECK(!ec, "--out " + out.string() + ": cannot create " + (out / "cells").string() + ": " + ec.message());
  if (!fs::exists(settings_path, ec)) write_text_atomically(settings_path, settings_text);

  // What is done already: a valid record (and its image). A row whose options equal its
  // baseline's reuses the baseline's cells.
  const size_t total = grid.rows.size() * grid.seeds.size();
  std::vector<std::vector<json>> records(grid.rows.size(), std::vector<json>(grid.seeds.size()));
  std::vector<std::vector<bool>> done(grid.rows.size(), std::vector<bool>(grid.seeds.size(), false));
  std::vector<size_t> baseline_row(grid.rows.size());
  std::vector<bool> same_as_baseline(grid.rows.size(), false);
  size_t to_run = 0;
  for (size_t r = 0; r < grid.rows.size(); ++r) {
    baseline_row[r] = grid.rows[r].baseline() ? r : baseline_row[r - 1];
    same_as_baseline[r] = !grid.rows[r].baseline() && row_args[r].values == row_args[baseline_row[r]].values;
    for (size_t k = 0; k < grid.seeds.size(); ++k) {
      if (same_as_baseline[r]) continue;
      if (auto rec = read_cell_record(cell_of(out, r, grid.seeds[k]).record, grid.rows[r].baseline())) {
        records[r][k] = std::move(*rec);
        done[r][k] = true;
      } else {
        ++to_run;
      }
    }
  }

  // Run the grid, row by row, the baseline of each prompt first.
  size_t step = 0, ran = 0;
  double ran_seconds = 0;
  for (size_t r = 0; r < grid.rows.size(); ++r) {
    const size_t b = baseline_row[r];
    for (size_t k = 0; k < grid.seeds.size(); ++k) {
      ++step;
      const Cell cell = cell_of(out, r, grid.seeds[k]);
      const std::string what = "prompt " + std::to_string(grid.rows[r].prompt) + ", " + grid.rows[r].label(grid.axes) +
                               ", seed " + std::to_string(grid.seeds[k]);
      if (same_as_baseline[r]) {
        records[r][k] = records[b][k];
        records[r][k]["row"] = r;
        records[r][k]["same_as_baseline"] = true;
        std::fprintf(stderr, "zimage sweep: [%zu/%zu] %s: the baseline's options, its cell reused\n", step, total, what.c_str());
        continue;
      }
      if (done[r][k]) {
        std::fprintf(stderr, "zimage sweep: [%zu/%zu] %s: done before, skipped\n", step, total, what.c_str());
        continue;
      }
      GenerateSetup s = setups[r];
      s.req.seed = grid.seeds[k];
      const json* base_rec = grid.rows[r].baseline() ? nullptr : &records[b][k];
      try {
        const DeviceHooks dev = device_hooks(s, pipe);
        records[r][k] = s.dtype == "float64" ? run_cell<double>(pipe, s, dev, cell, base_rec)
                                             : run_cell<float>(pipe, s, dev, cell, base_rec);
      } catch (const Error& e) {
        throw Error(what + ": " + e.what() + " (the cells before it are kept; rerun to resume)");
      }
      const double secs = records[r][k]["seconds"].get<double>();
      ran_seconds += secs;
      ++ran;
      const double eta = ran_seconds / double(ran) * double(to_run - ran);
      std::fprintf(stderr, "zimage sweep: [%zu/%zu] %s: %s, %s, ETA %s\n", step, total, what.c_str(),
                   records[r][k]["status"].get<std::string>().c_str(), seconds(secs).c_str(), seconds(eta).c_str());
    }
  }

  // The tables first (they hold every measure), then the sheet.
  write_results(out, grid, records, settings);
  std::string title = "zimage sweep " + fs::path(pipe.dir).lexically_normal().filename().string();
  if (grid.prompts.size() == 1) title += ": '" + grid.prompts[0] + "'";
  write_contact_sheet(out, title, grid, records, cell_px);
  std::printf("wrote %s (%zu cells), %s, %s\n", (out / "contact_sheet.png").string().c_str(), total,
              (out / "results.csv").string().c_str(), (out / "results.json").string().c_str());
  bool all_ok = true;
  for (const auto& row : records)
    for (const auto& rec : row) all_ok = all_ok && rec["status"] == "ok";
  if (!all_ok) std::fprintf(stderr, "zimage sweep: some cells are not images (see their status in results.csv)\n");
  return all_ok ? 0 : 1;
}

}  // namespace zimage::cli
