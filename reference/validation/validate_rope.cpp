// Validation of the RoPE goldens (docs/rope.md): the real-config tables, the
// gather and rotation at positions 1504..1535, and the caption-length sweep
// through a narrow model with the real axes_lens, with and without
// --rope-extend.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>

#include "io/synthetic.h"
#include "dit/transformer.h"
#include "validation/validate.h"

namespace zimage {

using numerics::Tier;

namespace {

ValidationRow exact_row(const std::string& name, const Shape& shape, const numerics::Comparison& cmp, const std::string& tier) {
  ValidationRow r;
  r.module = name;
  r.shape = shape;
  r.tier = tier;
  r.exact = true;
  r.cmp = cmp;
  r.pass = numerics::passes_exact(cmp);
  return r;
}

// fp32 tables and gathers: within 1 ulp of torch (cos/sin implementations
// differ; the angles are identical). The double path is gated by T2 instead.
template <class T>
ValidationRow table_row(const GoldenFile& g, const std::string& name, const Tensor<T>& got) {
  if constexpr (std::is_same_v<T, float>) {
    const Tensor<float> ref = g.get<float>(name);
    const numerics::UlpDistance u = numerics::ulp_distance(got, ref);
    ValidationRow r;
    r.module = name;
    r.shape = ref.shape;
    r.tier = "T0 (<= 1 ulp)";
    r.exact = true;
    r.pass = u.max_ulp <= 1;
    r.detail = "(max " + std::to_string(u.max_ulp) + " ulp; " + std::to_string(u.differ) + " of " +
               std::to_string(ref.numel()) + " differ by cos/sin rounding)";
    return r;
  } else {
    return t2_row(g, name, got, "T2", name, 1);
  }
}

template <class T>
void rope_table_rows(const GoldenFile& g, std::vector<ValidationRow>& rows) {
  const ZImageConfig& c = g.config;
  const auto tables = precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta);
  for (size_t a = 0; a < tables.size(); ++a) {
    const std::string s = std::to_string(a);
    const Tensor<float> angles = rope_angles(c.axes_dims[a], c.axes_lens[a], c.rope_theta);
    rows.push_back(exact_row("rope_embedder.angles." + s, angles.shape,
                             numerics::compare(angles, g.get<float>("rope_embedder.angles." + s)), "T0"));
    rows.push_back(table_row(g, "rope_embedder.freqs_cis." + s, tables[a]));
  }
}

template <class T>
void rope_gather_rows(const GoldenFile& g, std::vector<ValidationRow>& rows) {
  const ZImageConfig& c = g.config;
  const auto tables = precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta);
  rows.push_back(table_row(g, "rope_embedder", rope_embedder(tables, g.get<int32_t>("rope_embedder:in.ids"))));
  // As ZSingleStreamAttnProcessor: q = k = v = x (identity projections), rotate q and k.
  const Tensor<T> x = g.get<T>("rotary:in.x"), freqs = g.get<T>("rotary:in.freqs_cis");
  Tensor<T> q = x;
  apply_rotary_emb(q, freqs);
  const int64_t L = x.dim(1);
  rows.push_back(t2_row(g, "rotary.q", q, "T2", "rotary.q", L));
  rows.push_back(t2_row(g, "rotary.k", q, "T2", "rotary.k", L));
  const Tensor<T> o = scaled_dot_product_attention(q, q, x, nullptr).reshaped({x.dim(0), L, x.dim(2) * x.dim(3)});
  rows.push_back(t2_row(g, "rotary.attention", o, "T2", "rotary.attention", L));
}

// Synthetic sweep inputs (metadata `sweep_inputs`), generated as tools/golden/dump_rope.py does.
template <class T>
DitInputs<T> sweep_inputs(const nlohmann::json& spec, int64_t caption_len) {
  const uint64_t seed = spec.at("seed").get<uint64_t>();
  auto fill = [&](const std::string& name, const Shape& shape, const nlohmann::json& rule) {
    Tensor<float> t(shape);
    synthetic_fill(seed, name, rule.at("offset").get<double>(), rule.at("scale").get<double>(), t.ptr(), t.numel());
    return t.cast<T>();
  };
  const auto& xs = spec.at("x");
  const auto& cs = spec.at("cap_feats");
  std::string cap_name = cs.at("name_pattern").get<std::string>();
  cap_name.replace(cap_name.find("{L}"), 3, std::to_string(caption_len));
  DitInputs<T> in;
  in.x.push_back(fill(xs.at("name").get<std::string>(), xs.at("shape").get<Shape>(), xs));
  in.cap_feats.push_back(fill(cap_name, {caption_len, cs.at("width").get<int64_t>()}, cs));
  in.t = Tensor<T>({1}, {T(spec.at("t").at(0).get<float>())});
  return in;
}

const nlohmann::json& sweep_entry(const GoldenFile& g, const nlohmann::json& sweep, int64_t L) {
  for (const auto& e : sweep)
    if (e.at("caption_len").get<int64_t>() == L) return e;
  throw Error(g.path + ": the sweep has no caption length " + std::to_string(L));
}

}  // namespace

std::vector<int64_t> rope_sweep_lengths(const GoldenFile& g, bool extension) {
  std::vector<int64_t> out;
  const auto& md = g.file->metadata();
  if (!extension) {
    const nlohmann::json sweep = nlohmann::json::parse(md.at("sweep"));
    for (const auto& e : sweep) out.push_back(e.at("caption_len").get<int64_t>());
  } else if (md.count("extension")) {
    const nlohmann::json ext = nlohmann::json::parse(md.at("extension"));
    for (const auto& L : ext.at("caption_lens")) out.push_back(L.get<int64_t>());
  }
  return out;
}

template <class T>
std::vector<ValidationRow> validate_rope_sweep_case(const GoldenFile& g, int64_t L, bool extension) {
  std::vector<ValidationRow> rows;
  const auto& md = g.file->metadata();
  const nlohmann::json spec = nlohmann::json::parse(md.at("sweep_inputs"));
  const ZImageWeights<T> w = load_weights<T>(g.config, *g.params);
  const DitInputs<T> in = sweep_inputs<T>(spec, L);
  const std::string tag = ".L" + std::to_string(L);
  const int64_t seq = 32 + L + (32 - L % 32) % 32;  // 8x8 latent, patch 2: 16 image tokens padded to 32
  if (extension) {
    const nlohmann::json ext = nlohmann::json::parse(md.at("extension"));
    ForwardOptions opts;  // --rope-scaling extrapolate (--rope-extend is the same flag, bitwise: DitKnobsForward)
    opts.rope_scaling = RopeScaling::Extrapolate;
    const std::string name = "sample_ext" + std::to_string(ext.at("axes_lens").at(0).get<int>()) + tag;
    rows.push_back(t2_row(g, name, zimage_forward<T>(w, in, nullptr, opts)[0], "T2 --rope-extend", "sample.0", seq));
    return rows;
  }
  const nlohmann::json sweep = nlohmann::json::parse(md.at("sweep"));
  const nlohmann::json& e = sweep_entry(g, sweep, L);
  if (e.at("ok").get<bool>()) {
    Activations<T> acts;
    const bool parity = g.has("layers.1" + tag);
    const auto out = zimage_forward(w, in, parity ? &acts : nullptr);
    rows.push_back(t2_row(g, "sample" + tag, out[0], "T2 sweep", "sample.0", seq));
    if (!parity) return rows;
    for (const char* ids : {"patchify.x_pos_ids", "patchify.cap_pos_ids"}) {
      const Tensor<double> ref = g.get<double>(std::string(ids) + tag);
      rows.push_back(exact_row(std::string(ids) + tag, ref.shape, numerics::compare(acts.at(std::string(ids) + ".0"), ref), "T0"));
    }
    // Free-running intermediates carry the error of everything before them: whole-model chain.
    rows.push_back(t2_row(g, "rope_embedder.x" + tag, acts.at("rope_embedder.x"), "T2 sweep", "rope_embedder.x", seq));
    rows.push_back(t2_row(g, "layers.1" + tag, acts.at("layers.1"), "T2 sweep", "sample.0", seq));
    return rows;
  }
  // diffusers failed: we must fail too, before compute, naming the row torch could not index.
  ValidationRow r;
  r.module = "outcome" + tag;
  r.tier = "T0 (outcome)";
  r.exact = true;
  std::smatch m;
  const std::string theirs = e.at("error").get<std::string>();
  const std::string row = std::regex_search(theirs, m, std::regex(R"(index (\d+))")) ? m[1].str() : "?";
  try {
    zimage_forward(w, in);
    r.detail = "(we ran; diffusers failed: " + theirs + ")";
  } catch (const Error& err) {
    const std::string ours = err.what();
    r.pass = ours.find("position " + row + ",") != std::string::npos;
    r.detail = "(both fail; diffusers: " + theirs + "; ours names position " + row + (r.pass ? "" : ": NOT") + ")";
  }
  rows.push_back(r);
  return rows;
}

template <class T>
std::vector<ValidationRow> validate_rope_golden(const GoldenFile& g) {
  std::vector<ValidationRow> rows;
  if (g.kind == "rope_table") rope_table_rows<T>(g, rows);
  else if (g.kind == "rope_gather") rope_gather_rows<T>(g, rows);
  else if (g.kind == "rope_sweep")
    for (bool ext : {false, true})
      for (int64_t L : rope_sweep_lengths(g, ext))
        for (auto& r : validate_rope_sweep_case<T>(g, L, ext)) rows.push_back(std::move(r));
  else throw Error(g.path + ": unknown golden kind '" + g.kind + "'");
  return rows;
}

template std::vector<ValidationRow> validate_rope_sweep_case<float>(const GoldenFile&, int64_t, bool);
template std::vector<ValidationRow> validate_rope_sweep_case<double>(const GoldenFile&, int64_t, bool);
template std::vector<ValidationRow> validate_rope_golden<float>(const GoldenFile&);
template std::vector<ValidationRow> validate_rope_golden<double>(const GoldenFile&);

}  // namespace zimage
