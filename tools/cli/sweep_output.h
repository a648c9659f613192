// The files of zimage sweep (tools/cli/cmd_sweep.cpp; docs/experiments.md, "zimage sweep"):
// cell records, results.csv / results.json and the contact sheet, each written atomically
// (a temporary file renamed into place), and the check of a record read back on resume.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/sweep.h"

namespace zimage::cli {

// JSON text; strings that are not UTF-8 (a prompt's bytes) are written with U+FFFD, never a throw.
std::string json_text(const nlohmann::json& j);

// path.tmp written, then renamed to path; one-line errors naming the file.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// A cell's record as run_cell wrote it, checked: an object with a string status and a number
// seconds; when the status is "ok", the image's file name (which must exist next to the record),
// the latent and image statistics; with `baseline`, the caption means. nullopt when the record is
// absent or its image is missing (the cell runs again); one-line error naming the file when it
// is not a record at all.
std::optional<nlohmann::json> read_cell_record(const std::filesystem::path& record, bool baseline);

// The grid's description for the tables and the sheet.
struct SweepGrid {
  std::vector<std::string> prompts;
  std::vector<SweepAxis> axes;
  std::vector<SweepRow> rows;
  std::vector<uint64_t> seeds;
};

// results.csv and results.json (with `settings`, the sweep.json object) from the records
// [row][seed]; the JSON drops the baseline's caption means.
void write_results(const std::filesystem::path& out, const SweepGrid& grid,
                   const std::vector<std::vector<nlohmann::json>>& records, const nlohmann::json& settings);

// contact_sheet.png: a row per grid row, a column per seed, each image read back from cells/ and
// fitted into cell_px as it is read; cells whose status is not "ok" are empty (grey).
void write_contact_sheet(const std::filesystem::path& out, const std::string& title, const SweepGrid& grid,
                         const std::vector<std::vector<nlohmann::json>>& records, int64_t cell_px);

}  // namespace zimage::cli
