#include "sweep_output.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/bitmap_font.h"
#include "io/contact_sheet.h"
#include "io/png.h"

namespace zimage::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool is_number_array(const json& j, size_t n) {
  if (!j.is_array() || (n && j.size() != n)) return false;
  for (const auto& v : j)
    if (!v.is_number()) return false;
  return true;
}

}  // namespace

std::string json_text(const json& j) { return j.dump(1, ' ', false, json::error_handler_t::replace); }

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    ZIMAGE_CHECK(f.good(), "cannot write " + tmp.string());
    f << text;
    f.close();
    ZIMAGE_CHECK(f.good(), "cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  ZIMAGE_CHECK(!ec, "cannot write " + path.string() + ": " + ec.message());
}

std::optional<json> read_cell_record(const fs::path& record, bool baseline) {
  std::error_code ec;
  if (!fs::exists(record, ec)) return std::nullopt;
  const std::string bad = record.string() + ": not a cell record of zimage sweep (delete it to run the cell again)";
  json r;
  try {
    std::ifstream f(record);
    r = json::parse(f);
  } catch (const json::exception&) {
    throw Error(bad);
  }
  ZIMAGE_CHECK(r.is_object() && r.contains("status") && r["status"].is_string() && r.contains("seconds") &&
                   r["seconds"].is_number() && r.contains("caption_tokens") && r["caption_tokens"].is_number_integer(),
               bad);
  if (r["status"] == "ok") {
    ZIMAGE_CHECK(r.contains("image") && r["image"].is_string() && r.contains("latent_mean") &&
                     r["latent_mean"].is_number() && r.contains("latent_std") && r["latent_std"].is_number() &&
                     r.contains("image_mean") && is_number_array(r["image_mean"], 3) && r.contains("image_std") &&
                     is_number_array(r["image_std"], 3),
                 bad);
    for (const char* k : {"mad_to_baseline", "embedding_cos_to_baseline", "refined_cos_to_baseline"})
      ZIMAGE_CHECK(!r.contains(k) || r[k].is_number(), bad);
    if (!fs::exists(record.parent_path() / r["image"].get<std::string>(), ec)) return std::nullopt;
  }
  if (baseline)
    ZIMAGE_CHECK(r.contains("embedding") && is_number_array(r["embedding"], 0) && r.contains("refined") &&
                     is_number_array(r["refined"], 0),
                 bad);
  return r;
}

void write_results(const fs::path& out, const SweepGrid& g, const std::vector<std::vector<json>>& records,
                   const json& settings) {
  std::ostringstream csv;
  csv << "row,prompt_index,prompt";
  for (const auto& a : g.axes) csv << "," << csv_field(a.knob);
  csv << ",seed,status,reused,image,seconds,latent_mean,latent_std,image_mean_r,image_mean_g,image_mean_b,"
         "image_std_r,image_std_g,image_std_b,mad_to_baseline,embedding_cos_to_baseline,refined_cos_to_baseline,"
         "caption_tokens\n";
  json cells = json::array();
  auto opt_number = [](const json& rec, const char* key) { return rec.contains(key) ? number(rec[key].get<double>()) : ""; };
  for (size_t r = 0; r < g.rows.size(); ++r)
    for (size_t k = 0; k < g.seeds.size(); ++k) {
      json rec = records[r][k];
      rec.erase("embedding");
      rec.erase("refined");
      const bool ok = rec["status"] == "ok";
      const std::string& prompt = g.prompts[size_t(g.rows[r].prompt)];
      const std::string image = ok ? "cells/" + rec["image"].get<std::string>() : "";
      csv << r << "," << g.rows[r].prompt << "," << csv_field(prompt);
      json knobs = json::object();
      for (size_t i = 0; i < g.axes.size(); ++i) {
        const std::string v = g.rows[r].baseline() ? "baseline" : g.rows[r].values[i];
        csv << "," << csv_field(v);
        knobs[g.axes[i].knob] = v;
      }
      const bool reused = rec.value("same_as_baseline", false);
      csv << "," << g.seeds[k] << "," << csv_field(rec["status"].get<std::string>()) << "," << (reused ? 1 : 0) << ","
          << csv_field(image) << "," << number(rec["seconds"].get<double>());
      for (const char* key : {"latent_mean", "latent_std"}) csv << "," << opt_number(rec, key);
      for (const char* key : {"image_mean", "image_std"})
        for (size_t c = 0; c < 3; ++c) csv << "," << (ok ? number(rec[key][c].get<double>()) : "");
      for (const char* key : {"mad_to_baseline", "embedding_cos_to_baseline", "refined_cos_to_baseline"})
        csv << "," << opt_number(rec, key);
      csv << "," << rec["caption_tokens"].get<int64_t>() << "\n";
      rec["prompt_index"] = g.rows[r].prompt;
      rec["prompt"] = prompt;
      rec["knobs"] = knobs;
      rec["baseline"] = g.rows[r].baseline();
      if (ok) rec["image"] = image;
      cells.push_back(rec);
    }
  write_text_atomically(out / "results.csv", csv.str());
  write_text_atomically(out / "results.json", json_text(json{{"sweep", settings}, {"cells", cells}}));
}

void write_contact_sheet(const fs::path& out, const std::string& title, const SweepGrid& g,
                         const std::vector<std::vector<json>>& records, int64_t cell_px) {
  std::vector<Image8> images;
  images.reserve(g.rows.size() * g.seeds.size());  // no reallocation: the sheet points into it
  ContactSheet sheet;
  sheet.title = title;
  for (uint64_t s : g.seeds) sheet.column_labels.push_back("seed " + std::to_string(s));
  for (size_t r = 0; r < g.rows.size(); ++r) {
    std::string label = g.prompts.size() > 1 ? "prompt " + std::to_string(g.rows[r].prompt) + ": " : "";
    label += g.rows[r].label(g.axes);
    if (g.rows[r].baseline() && g.prompts.size() > 1) label += " ('" + g.prompts[size_t(g.rows[r].prompt)] + "')";
    sheet.row_labels.push_back(label);
    sheet.cells.emplace_back();
    for (size_t k = 0; k < g.seeds.size(); ++k) {
      const json& rec = records[r][k];
      const Image8* cell = nullptr;
      if (rec["status"] == "ok") {
        images.push_back(fit_image(read_png((out / "cells" / rec["image"].get<std::string>()).string()), cell_px));
        cell = &images.back();
      }
      sheet.cells.back().push_back(cell);
    }
  }
  const int scale = contact_sheet_text_scale(cell_px);  // wide enough for the longest label, up to 4096 px
  for (const auto& label : sheet.row_labels)
    sheet.min_width = std::max(sheet.min_width, std::min<int64_t>(4096, text_width(label, scale) + 8 * scale));
  write_png((out / "contact_sheet.png").string(), render_contact_sheet(sheet, cell_px));
}

}  // namespace zimage::cli
