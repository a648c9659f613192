// ZImageConfig <-> config.json. Every field of the struct is a required key;
// other keys (_class_name, _diffusers_version, ...) are ignored. from_json
// validates, so a config read from a file is always runnable.
#include "dit/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/json_file.h"

namespace zimage {

using json = nlohmann::json;

namespace {

// "[1, 2, 3]", as the messages have always written a list.
std::string list_str(const std::vector<int>& v) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
  o << "]";
  return o.str();
}

}  // namespace

ZImageConfig ZImageConfig::from_json(const json& j, const std::string& source) {
  ZIMAGE_CHECK(j.is_object(), source + ": config is not a JSON object");
  if (auto it = j.find("siglip_feat_dim"); it != j.end() && !it->is_null())
    throw Error(source + ": siglip_feat_dim is " + json_brief(*it) +
                ": the omni (SigLIP) variant is out of scope; only basic mode (siglip_feat_dim null) is supported");
  ZImageConfig c;
  c.all_patch_size = json_get_int_list(j, "all_patch_size", source);
  c.all_f_patch_size = json_get_int_list(j, "all_f_patch_size", source);
  c.in_channels = json_get_int(j, "in_channels", source);
  c.dim = json_get_int(j, "dim", source);
  c.n_layers = json_get_int(j, "n_layers", source);
  c.n_refiner_layers = json_get_int(j, "n_refiner_layers", source);
  c.n_heads = json_get_int(j, "n_heads", source);
  c.n_kv_heads = json_get_int(j, "n_kv_heads", source);
  c.norm_eps = json_get_number(j, "norm_eps", source);
  c.qk_norm = json_get_bool(j, "qk_norm", source);
  c.cap_feat_dim = json_get_int(j, "cap_feat_dim", source);
  c.rope_theta = json_get_number(j, "rope_theta", source);
  c.t_scale = json_get_number(j, "t_scale", source);
  c.axes_dims = json_get_int_list(j, "axes_dims", source);
  c.axes_lens = json_get_int_list(j, "axes_lens", source);
  c.validate(source);
  return c;
}

ZImageConfig ZImageConfig::from_file(const std::string& path) {
  return from_json(read_json_file(path, "config"), path);
}

json ZImageConfig::to_json() const {
  return json{{"all_patch_size", all_patch_size},
              {"all_f_patch_size", all_f_patch_size},
              {"in_channels", in_channels},
              {"dim", dim},
              {"n_layers", n_layers},
              {"n_refiner_layers", n_refiner_layers},
              {"n_heads", n_heads},
              {"n_kv_heads", n_kv_heads},
              {"norm_eps", norm_eps},
              {"qk_norm", qk_norm},
              {"cap_feat_dim", cap_feat_dim},
              {"siglip_feat_dim", nullptr},
              {"rope_theta", rope_theta},
              {"t_scale", t_scale},
              {"axes_dims", axes_dims},
              {"axes_lens", axes_lens}};
}

void ZImageConfig::validate(const std::string& source) const {
  const std::string s = source + ": ";
  ZIMAGE_CHECK(all_patch_size.size() == 1 && all_f_patch_size.size() == 1,
               s + "all_patch_size " + list_str(all_patch_size) + " / all_f_patch_size " + list_str(all_f_patch_size) +
                   ": exactly one patch size and one f_patch size are supported");
  ZIMAGE_CHECK(all_patch_size[0] > 0, s + "all_patch_size " + list_str(all_patch_size) + " must be positive");
  ZIMAGE_CHECK(all_f_patch_size[0] > 0, s + "all_f_patch_size " + list_str(all_f_patch_size) + " must be positive");
  auto positive = [&](const char* key, int v) {
    ZIMAGE_CHECK(v > 0, s + key + " " + std::to_string(v) + " must be positive");
  };
  positive("in_channels", in_channels);
  positive("dim", dim);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("cap_feat_dim", cap_feat_dim);
  ZIMAGE_CHECK(n_refiner_layers >= 0, s + "n_refiner_layers " + std::to_string(n_refiner_layers) + " must be >= 0");
  ZIMAGE_CHECK(n_kv_heads == n_heads, s + "n_kv_heads " + std::to_string(n_kv_heads) + " != n_heads " +
                                          std::to_string(n_heads) +
                                          ": diffusers ignores n_kv_heads (plain multi-head attention), so a config "
                                          "that sets it differently is refused rather than silently reinterpreted");
  ZIMAGE_CHECK(dim % n_heads == 0,
               s + "dim " + std::to_string(dim) + " is not a multiple of n_heads " + std::to_string(n_heads));
  ZIMAGE_CHECK(std::isfinite(norm_eps) && norm_eps > 0, s + "norm_eps " + json_number_text(norm_eps) + " must be > 0");
  ZIMAGE_CHECK(std::isfinite(rope_theta) && rope_theta > 0,
               s + "rope_theta " + json_number_text(rope_theta) + " must be > 0");
  ZIMAGE_CHECK(std::isfinite(t_scale) && t_scale > 0, s + "t_scale " + json_number_text(t_scale) + " must be > 0");
  ZIMAGE_CHECK(axes_dims.size() == 3 && axes_lens.size() == 3,
               s + "axes_dims " + list_str(axes_dims) + " and axes_lens " + list_str(axes_lens) +
                   " must both have exactly 3 entries (frame, height, width)");
  for (int d : axes_dims)
    ZIMAGE_CHECK(d > 0 && d % 2 == 0, s + "axes_dims " + list_str(axes_dims) + ": each entry must be even and > 0");
  for (int l : axes_lens) ZIMAGE_CHECK(l > 0, s + "axes_lens " + list_str(axes_lens) + ": each entry must be > 0");
  const int64_t sum = std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0});
  ZIMAGE_CHECK(head_dim() == sum, s + "head_dim " + std::to_string(head_dim()) + " (dim " + std::to_string(dim) +
                                      " / n_heads " + std::to_string(n_heads) + ") != sum(axes_dims) " +
                                      std::to_string(sum));
  // The derived sizes are ints too (double products: exact below 2^53).
  constexpr double kIntMax = std::numeric_limits<int>::max();
  ZIMAGE_CHECK(double(dim) / 3.0 * 8.0 <= kIntMax,
               s + "dim " + std::to_string(dim) + ": the feed-forward width int(dim / 3 * 8) does not fit an int");
  ZIMAGE_CHECK(double(all_f_patch_size[0]) * all_patch_size[0] * all_patch_size[0] * in_channels <= kIntMax,
               s + "all_f_patch_size " + list_str(all_f_patch_size) + " * all_patch_size " + list_str(all_patch_size) +
                   "^2 * in_channels " + std::to_string(in_channels) + " (the patch width) does not fit an int");
}

}  // namespace zimage
