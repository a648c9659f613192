#include "numerics/tolerance.h"

#include <cmath>
#include <cstring>
#include <cstdio>
#include <regex>

namespace zimage::numerics {

double op_eps(const Op& op, double u_s, double u_a) {
  return op.n_r * u_s + std::sqrt(op.K) * u_a + (op.transcendental ? 4.0 * u_a : 0.0);
}

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::T0: return "T0";
    case Tier::T1: return "T1";
    case Tier::T2: return "T2";
    case Tier::T3: return "T3";
    case Tier::T4: return "T4";
  }
  return "?";
}

namespace {

using Ops = std::vector<Op>;

Op linear_op(double K) { return {"linear(K=" + std::to_string(int64_t(K)) + ")", 1, K, false}; }
// rsqrt(mean(x^2) + eps) then two multiplies.
Op rms_op(double C) { return {"rms_norm(K=" + std::to_string(int64_t(C)) + ")", 3, C, true}; }
Op layer_norm_op(double C) { return {"layer_norm(K=" + std::to_string(int64_t(C)) + ")", 3, 2 * C, true}; }
Op silu_op() { return {"silu", 2, 1, true}; }
Op tanh_op() { return {"tanh", 1, 1, true}; }
Op elementwise_op(const std::string& n) { return {n, 1, 1, false}; }

void append(Ops& a, const Ops& b) { a.insert(a.end(), b.begin(), b.end()); }

Ops timestep_embedding_ops() { return {{"timestep_embedding(cos,sin)", 1, 1, true}}; }
Ops t_embedder_ops() {
  Ops o = timestep_embedding_ops();
  append(o, {linear_op(T_FREQ_DIM), silu_op(), linear_op(T_EMBED_MID)});
  return o;
}
Ops attention_ops(const ZImageConfig& c, int64_t L) {
  return {linear_op(c.dim), rms_op(c.head_dim()), {"rope", 2, 2, false}, {"q k^T", 1, double(c.head_dim()), false},
          {"softmax", 2, double(L), true}, {"p v", 1, double(L), false}, linear_op(c.dim)};
}
Ops feed_forward_ops(const ZImageConfig& c) {
  return {linear_op(c.dim), silu_op(), elementwise_op("gate mul"), linear_op(c.ffn_hidden())};
}
Ops block_ops(const ZImageConfig& c, int64_t L, bool modulated) {
  Ops o;
  if (modulated) append(o, {linear_op(c.adaln_dim()), tanh_op(), elementwise_op("scale")});
  o.push_back(rms_op(c.dim));
  append(o, attention_ops(c, L));
  append(o, {rms_op(c.dim), elementwise_op("gated residual"), rms_op(c.dim)});
  append(o, feed_forward_ops(c));
  append(o, {rms_op(c.dim), elementwise_op("gated residual")});
  return o;
}
Ops final_layer_ops(const ZImageConfig& c) {
  return {silu_op(), linear_op(c.adaln_dim()), layer_norm_op(c.dim), elementwise_op("scale"), linear_op(c.dim)};
}
Ops whole_model_ops(const ZImageConfig& c, int64_t L) {
  Ops o = t_embedder_ops();
  append(o, {rms_op(c.cap_feat_dim), linear_op(c.cap_feat_dim), linear_op(c.patch_dim())});
  for (int i = 0; i < 2 * c.n_refiner_layers + c.n_layers; ++i) append(o, block_ops(c, L, true));
  append(o, final_layer_ops(c));
  return o;
}

}  // namespace

std::vector<Op> module_ops(const std::string& path, const ZImageConfig& c, int64_t L) {
  std::smatch m;
  static const std::regex block_re(R"(^(noise_refiner|context_refiner|layers)\.(\d+)(\.(.*))?$)");
  static const std::regex final_re(R"(^all_final_layer\.\d+-\d+(\.(.*))?$)");
  if (std::regex_match(path, m, block_re)) {
    const bool modulated = m[1] != "context_refiner";
    const std::string sub = m[4];
    if (sub.empty()) return block_ops(c, L, modulated);
    if (sub == "attention") return attention_ops(c, L);
    if (sub == "attention.to_q" || sub == "attention.to_k" || sub == "attention.to_v" || sub == "attention.to_out.0")
      return {linear_op(c.dim)};
    if (sub == "attention.norm_q" || sub == "attention.norm_k") return {rms_op(c.head_dim())};
    if (sub == "attention_norm1" || sub == "attention_norm2" || sub == "ffn_norm1" || sub == "ffn_norm2")
      return {rms_op(c.dim)};
    if (sub == "feed_forward") return feed_forward_ops(c);
    if (sub == "feed_forward.w1" || sub == "feed_forward.w3") return {linear_op(c.dim)};
    if (sub == "feed_forward.w2") return {linear_op(c.ffn_hidden())};
    if (sub == "adaLN_modulation" || sub == "adaLN_modulation.0") return {linear_op(c.adaln_dim())};
  } else if (std::regex_match(path, m, final_re)) {
    const std::string sub = m[2];
    if (sub.empty()) return final_layer_ops(c);
    if (sub == "norm_final") return {layer_norm_op(c.dim)};
    if (sub == "linear") return {linear_op(c.dim)};
    if (sub == "adaLN_modulation" || sub == "adaLN_modulation.1") return {silu_op(), linear_op(c.adaln_dim())};
  } else if (path == "t_embedder" || path == "t_embedder.mlp") {
    return t_embedder_ops();
  } else if (path == "t_embedder.mlp.0") {
    return {linear_op(T_FREQ_DIM)};
  } else if (path == "t_embedder.mlp.2") {
    return {linear_op(T_EMBED_MID)};
  } else if (path == "t_embedder.timestep_embedding") {
    return timestep_embedding_ops();
  } else if (path == "cap_embedder") {
    return {rms_op(c.cap_feat_dim), linear_op(c.cap_feat_dim)};
  } else if (path == "cap_embedder.0") {
    return {rms_op(c.cap_feat_dim)};
  } else if (path == "cap_embedder.1") {
    return {linear_op(c.cap_feat_dim)};
  } else if (path.rfind("all_x_embedder.", 0) == 0) {
    return {linear_op(c.patch_dim())};
  } else if (path == "rotary.q" || path == "rotary.k") {
    return {{"rope", 2, 2, false}};
  } else if (path == "rotary.attention") {
    return {{"rope", 2, 2, false}, {"q k^T", 1, double(c.head_dim()), false}, {"softmax", 2, double(L), true},
            {"p v", 1, double(L), false}};
  } else if (path.rfind("rope_embedder", 0) == 0) {
    return {{"cos/sin of an fp32 angle", 1, 1, true}};
  } else if (path.rfind("sample.", 0) == 0) {
    return whole_model_ops(c, L);
  }
  throw Error("tolerance policy: no op chain for module '" + path + "'");
}

Budget budget_for(Tier tier, const std::vector<Op>& ops) {
  Budget b;
  double eps = 0;
  // T4: bf16 storage with fp32 accumulation; T1, T2, T3: fp32 throughout.
  const double u_storage = tier == Tier::T4 ? kUnitRoundoffBf16 : kUnitRoundoffFp32;
  for (const Op& op : ops) {
    eps += op_eps(op, u_storage, kUnitRoundoffFp32);
    b.chain += (b.chain.empty() ? "" : " + ") + op.name;
  }
  if (tier == Tier::T2) eps *= 2.0;  // our fp32 error + the golden's own fp32 error
  b.rel_rms = eps;
  b.max_n = 4.0 * eps;
  return b;
}

Budget module_budget(Tier tier, const std::string& path, const ZImageConfig& cfg, int64_t seq_len) {
  return budget_for(tier, module_ops(path, cfg, seq_len));
}

Comparison compare(const double* a, const double* r, int64_t n) {
  Comparison c;
  c.n = n;
  long double diff2 = 0, ref2 = 0;
  double max_abs = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) && std::isfinite(r[i])) {
      if (c.nonfinite++ == 0) c.worst = i, c.worst_a = a[i], c.worst_r = r[i];
      continue;
    }
    const double d = std::fabs(a[i] - r[i]);
    if (a[i] != r[i]) ++c.mismatches;
    diff2 += (long double)d * d;
    ref2 += (long double)r[i] * r[i];
    if (d > max_abs && c.nonfinite == 0) max_abs = d, c.worst = i, c.worst_a = a[i], c.worst_r = r[i];
  }
  c.ref_rms = n ? double(std::sqrt(ref2 / n)) : 0.0;
  c.rel_rms = ref2 > 0 ? double(std::sqrt(diff2 / ref2)) : (diff2 > 0 ? INFINITY : 0.0);
  c.max_n = c.ref_rms > 0 ? std::max(max_abs, 0.0) / c.ref_rms : (max_abs > 0 ? INFINITY : 0.0);
  return c;
}

namespace {
// Maps a float's bits to a monotonic integer line (-0 and +0 both 0).
int64_t ordered_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? -int64_t(i & 0x7fffffff) : int64_t(i);
}
}  // namespace

UlpDistance ulp_distance(const Tensor<float>& a, const Tensor<float>& r) {
  ZIMAGE_CHECK(a.shape == r.shape, "ulp_distance: shape " + shape_str(a.shape) + " vs " + shape_str(r.shape));
  UlpDistance u;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t d = std::isnan(a[i]) || std::isnan(r[i]) ? INT64_MAX : std::llabs(ordered_bits(a[i]) - ordered_bits(r[i]));
    if (d) ++u.differ;
    if (d > u.max_ulp) u.max_ulp = d, u.worst = i;
  }
  return u;
}

bool passes(const Comparison& c, const Budget& b) {
  return c.nonfinite == 0 && c.rel_rms <= b.rel_rms && c.max_n <= b.max_n;
}

bool passes_peer(const Comparison& cand, const Comparison& peer, double floor) {
  return cand.nonfinite == 0 && cand.max_n <= 2.0 * peer.max_n + floor && cand.rel_rms <= 2.0 * peer.rel_rms + floor;
}

std::string describe_peer(const Comparison& cand, const Comparison& peer, double floor) {
  char buf[400];
  const double lim_rms = 2.0 * peer.rel_rms + floor, lim_max = 2.0 * peer.max_n + floor;
  std::snprintf(buf, sizeof buf,
                "rel_rms %.3e max_n %.3e worst [%lld] %.7g vs %.7g nonfinite %lld | peer rel_rms %.3e max_n %.3e, "
                "floor %.3e -> limits %.3e / %.3e (%.1f%% used)",
                cand.rel_rms, cand.max_n, (long long)cand.worst, cand.worst_a, cand.worst_r, (long long)cand.nonfinite,
                peer.rel_rms, peer.max_n, floor, lim_rms, lim_max,
                100.0 * std::max(cand.rel_rms / lim_rms, cand.max_n / lim_max));
  return buf;
}

bool passes_exact(const Comparison& c) { return c.nonfinite == 0 && c.mismatches == 0; }

double budget_used(const Comparison& c, const Budget& b) {
  return std::max(c.rel_rms / b.rel_rms, c.max_n / b.max_n);
}

std::string describe(const Comparison& c, const Budget& b) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "rel_rms %.3e max_n %.3e worst [%lld] %.7g vs %.7g nonfinite %lld | budget rel_rms %.3e max_n %.3e "
                "(%.1f%% used)",
                c.rel_rms, c.max_n, (long long)c.worst, c.worst_a, c.worst_r, (long long)c.nonfinite, b.rel_rms,
                b.max_n, 100.0 * budget_used(c, b));
  return buf;
}

std::string describe_exact(const Comparison& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "exact: %lld of %lld elements differ, nonfinite %lld, worst [%lld] %.9g vs %.9g",
                (long long)c.mismatches, (long long)c.n, (long long)c.nonfinite, (long long)c.worst, c.worst_a,
                c.worst_r);
  return buf;
}

// ---------------------------------------------------------------- VAE (AutoencoderKL)

namespace {

std::string k_str(double K) { return std::to_string(int64_t(K)); }
Op vae_conv_op(double K) { return {"conv(K=" + k_str(K) + ")", 1, K + 1, false}; }
Op vae_group_norm_op(double N) { return {"group_norm(N=" + k_str(N) + ")", 3, 2 * N, true}; }
Op vae_linear_op(double K) { return {"linear(K=" + k_str(K) + ")", 1, K + 1, false}; }

Ops vae_resnet_ops(double cin, double cout, double S, double G) {
  Ops o{vae_group_norm_op(cin / G * S), silu_op(), vae_conv_op(cin * 9), vae_group_norm_op(cout / G * S), silu_op(),
        vae_conv_op(cout * 9)};
  if (cin != cout) o.push_back(vae_conv_op(cin));
  o.push_back(elementwise_op("residual add"));
  return o;
}

Ops vae_attention_ops(double C, double L, double G) {
  return {vae_group_norm_op(C / G * L),        vae_linear_op(C),
          {"q k^T", 1, C, false},              {"softmax", 2, L, true},
          {"p v", 1, L, false},                vae_linear_op(C),
          elementwise_op("residual add")};
}

Ops vae_mid_ops(const VaeConfig& c, double C, double S) {
  Ops o = vae_resnet_ops(C, C, S, c.norm_num_groups);
  if (c.mid_block_add_attention) append(o, vae_attention_ops(C, S, c.norm_num_groups));
  append(o, vae_resnet_ops(C, C, S, c.norm_num_groups));
  return o;
}

int64_t down_size(int64_t h) { return (h - 2) / 2 + 1; }  // Downsample2D: pad (0,1,0,1), k 3, stride 2

// encoder.down_blocks.{i} on [*, cin, h, w]; returns the output spatial size through h, w.
Ops vae_down_block_ops(const VaeConfig& c, int i, double cin, int64_t& h, int64_t& w) {
  const double out = c.block_out_channels.at(size_t(i)), G = c.norm_num_groups;
  Ops o;
  for (int j = 0; j < c.layers_per_block; ++j) append(o, vae_resnet_ops(j == 0 ? cin : out, out, double(h * w), G));
  if (i < c.num_blocks() - 1) {
    o.push_back(vae_conv_op(out * 9));
    h = down_size(h), w = down_size(w);
  }
  return o;
}

// decoder.up_blocks.{i} on [*, cin, h, w]; returns the output spatial size through h, w.
Ops vae_up_block_ops(const VaeConfig& c, int i, double cin, int64_t& h, int64_t& w) {
  const double out = c.block_out_channels.at(size_t(c.num_blocks() - 1 - i)), G = c.norm_num_groups;
  Ops o;
  for (int j = 0; j < c.layers_per_block + 1; ++j) append(o, vae_resnet_ops(j == 0 ? cin : out, out, double(h * w), G));
  if (i < c.num_blocks() - 1) {
    h *= 2, w *= 2;
    o.push_back(vae_conv_op(out * 9));
  }
  return o;
}

Ops vae_encoder_ops(const VaeConfig& c, int64_t h, int64_t w) {
  Ops o{vae_conv_op(double(c.in_channels) * 9)};
  for (int i = 0; i < c.num_blocks(); ++i)
    append(o, vae_down_block_ops(c, i, c.block_out_channels[size_t(i == 0 ? 0 : i - 1)], h, w));
  const double top = c.block_out_channels.back();
  append(o, vae_mid_ops(c, top, double(h * w)));
  append(o, {vae_group_norm_op(top / c.norm_num_groups * double(h * w)), silu_op(), vae_conv_op(top * 9)});
  return o;
}

Ops vae_decoder_ops(const VaeConfig& c, int64_t h, int64_t w) {
  const double top = c.block_out_channels.back();
  Ops o{vae_conv_op(double(c.latent_channels) * 9)};
  append(o, vae_mid_ops(c, top, double(h * w)));
  for (int i = 0; i < c.num_blocks(); ++i)
    append(o, vae_up_block_ops(c, i, c.block_out_channels[size_t(c.num_blocks() - 1 - (i == 0 ? 0 : i - 1))], h, w));
  const double bottom = c.block_out_channels.front();
  append(o, {vae_group_norm_op(bottom / c.norm_num_groups * double(h * w)), silu_op(), vae_conv_op(bottom * 9)});
  return o;
}

Ops vae_decode_ops(const VaeConfig& c, int64_t h, int64_t w) {
  Ops o;
  if (c.use_post_quant_conv) o.push_back(vae_conv_op(c.latent_channels));
  append(o, vae_decoder_ops(c, h, w));
  return o;
}

// The spatial size (product of the dims after C) of an input [B, C, ...].
double spatial(const Shape& in) {
  double s = 1;
  for (size_t d = 2; d < in.size(); ++d) s *= double(in[d]);
  return s;
}

}  // namespace

std::vector<Op> vae_module_ops(const std::string& path, const VaeConfig& c, const Shape& in) {
  ZIMAGE_CHECK(in.size() >= 2, "tolerance policy: VAE module '" + path + "' input " + shape_str(in) + " has no channel dim");
  const double G = c.norm_num_groups, C = double(in[1]), S = spatial(in);
  auto hw = [&]() {
    ZIMAGE_CHECK(in.size() == 4, "tolerance policy: VAE module '" + path + "' needs a [B, C, H, W] input, got " + shape_str(in));
    return std::pair<int64_t, int64_t>{in[2], in[3]};
  };
  if (path == "unscale") return {{"latents / scaling_factor + shift_factor", 2, 1, false}};
  if (path == "decode") return vae_decode_ops(c, hw().first, hw().second);
  if (path == "tiled_decode") {
    // Each tile is one decode of at most tile_latent x tile_latent latents, then
    // two blends (a * (1 - y/E) + b * y/E: 2 weight roundings, 2 products, 1 sum each).
    const int64_t t = c.tile_latent_min_size();
    Ops o = vae_decode_ops(c, std::min(hw().first, t), std::min(hw().second, t));
    o.push_back({"blend_v", 5, 1, false});
    o.push_back({"blend_h", 5, 1, false});
    return o;
  }
  if (path == "encode.mean" || path == "encode.logvar" || path == "encode") {
    Ops o = vae_encoder_ops(c, hw().first, hw().second);
    if (c.use_quant_conv) o.push_back(vae_conv_op(2.0 * c.latent_channels));
    return o;
  }
  if (path == "quant_conv" || path == "post_quant_conv") return {vae_conv_op(C)};

  std::smatch m;
  static const std::regex top_re(R"(^(encoder|decoder)(\.(.*))?$)");
  ZIMAGE_CHECK(std::regex_match(path, m, top_re), "tolerance policy: no op chain for VAE module '" + path + "'");
  const bool enc = m[1] == "encoder";
  const std::string sub = m[3];
  if (sub.empty()) return enc ? vae_encoder_ops(c, hw().first, hw().second) : vae_decoder_ops(c, hw().first, hw().second);
  if (sub == "conv_in" || sub == "conv_out") return {vae_conv_op(C * 9)};
  if (sub == "conv_norm_out") return {vae_group_norm_op(C / G * S)};
  if (sub == "mid_block") return vae_mid_ops(c, C, S);

  static const std::regex block_re(R"(^(down_blocks|up_blocks)\.(\d+)$)");
  if (std::regex_match(sub, m, block_re)) {
    auto [h, w] = hw();
    const int i = std::stoi(m[2]);
    ZIMAGE_CHECK(i < c.num_blocks(), "tolerance policy: no block '" + path + "' in this config");
    return m[1] == "down_blocks" ? vae_down_block_ops(c, i, C, h, w) : vae_up_block_ops(c, i, C, h, w);
  }
  // Leaves and resnets / attentions / samplers anywhere below.
  static const std::regex resnet_re(R"(^(mid_block|down_blocks\.(\d+)|up_blocks\.(\d+))\.resnets\.(\d+)(\.(.*))?$)");
  static const std::regex attn_re(R"(^mid_block\.attentions\.0(\.(.*))?$)");
  static const std::regex sampler_re(R"(^(down_blocks|up_blocks)\.\d+\.(downsamplers|upsamplers)\.0(\.conv)?$)");
  if (std::regex_match(sub, m, resnet_re)) {
    const std::string leaf = m[6];
    if (leaf == "norm1" || leaf == "norm2") return {vae_group_norm_op(C / G * S)};
    if (leaf == "conv1" || leaf == "conv2") return {vae_conv_op(C * 9)};
    if (leaf == "conv_shortcut") return {vae_conv_op(C)};
    if (leaf.empty()) {
      double cout = C;  // the mid block keeps the width; the others: block_out_channels of their block
      if (m[2].matched) cout = c.block_out_channels.at(size_t(std::stoi(m[2])));
      if (m[3].matched) cout = c.block_out_channels.at(size_t(c.num_blocks() - 1 - std::stoi(m[3])));
      return vae_resnet_ops(C, cout, S, G);
    }
  } else if (std::regex_match(sub, m, attn_re)) {
    const std::string leaf = m[2];
    if (leaf.empty()) return vae_attention_ops(C, S, G);
    if (leaf == "group_norm") return {vae_group_norm_op(C / G * S)};
    if (leaf == "to_q" || leaf == "to_k" || leaf == "to_v" || leaf == "to_out.0") return {vae_linear_op(double(in.back()))};
  } else if (std::regex_match(sub, m, sampler_re)) {
    return {vae_conv_op(C * 9)};  // F.pad and nearest upsampling are exact
  }
  throw Error("tolerance policy: no op chain for VAE module '" + path + "'");
}

Budget vae_module_budget(Tier tier, const std::string& path, const VaeConfig& cfg, const Shape& in) {
  return budget_for(tier, vae_module_ops(path, cfg, in));
}

// ---------------------------------------------------------------- Qwen3 text encoder

namespace {

Ops te_attention_ops(const Qwen3Config& c, double L) {
  return {linear_op(c.hidden_size), rms_op(c.head_dim), {"rope(rotate_half)", 2, 2, false},
          {"q k^T", 1, double(c.head_dim), false}, {"softmax", 2, L, true}, {"p v", 1, L, false},
          linear_op(c.q_dim())};
}
Ops te_mlp_ops(const Qwen3Config& c) {
  return {linear_op(c.hidden_size), silu_op(), elementwise_op("gate mul"), linear_op(c.intermediate_size)};
}
Ops te_layer_ops(const Qwen3Config& c, double L) {
  Ops o{rms_op(c.hidden_size)};
  append(o, te_attention_ops(c, L));
  o.push_back(elementwise_op("residual"));
  o.push_back(rms_op(c.hidden_size));
  append(o, te_mlp_ops(c));
  o.push_back(elementwise_op("residual"));
  return o;
}

}  // namespace

std::vector<Op> text_encoder_module_ops(const std::string& path, const Qwen3Config& c, int64_t seq_len) {
  const double L = double(seq_len);
  std::smatch m;
  static const std::regex layer_re(R"(^layers\.(\d+)(\.(.*))?$)");
  static const std::regex hs_re(R"(^hidden_states\.(\d+)$)");
  if (std::regex_match(path, m, layer_re)) {
    const std::string sub = m[3];
    if (sub.empty()) return te_layer_ops(c, L);
    if (sub == "input_layernorm" || sub == "post_attention_layernorm") return {rms_op(c.hidden_size)};
    if (sub == "self_attn") return te_attention_ops(c, L);
    if (sub == "self_attn.q_proj" || sub == "self_attn.k_proj" || sub == "self_attn.v_proj") return {linear_op(c.hidden_size)};
    if (sub == "self_attn.o_proj") return {linear_op(c.q_dim())};
    if (sub == "self_attn.q_norm" || sub == "self_attn.k_norm") return {rms_op(c.head_dim)};
    if (sub == "mlp") return te_mlp_ops(c);
    if (sub == "mlp.gate_proj" || sub == "mlp.up_proj") return {linear_op(c.hidden_size)};
    if (sub == "mlp.down_proj") return {linear_op(c.intermediate_size)};
  } else if (std::regex_match(path, m, hs_re)) {
    const int k = std::stoi(m[1]);
    ZIMAGE_CHECK(k <= c.num_hidden_layers, "tolerance policy: no hidden state '" + path + "' in this config");
    Ops o{elementwise_op("embedding gather (exact)")};
    for (int i = 0; i < std::min(k, c.num_hidden_layers); ++i) append(o, te_layer_ops(c, L));
    if (k == c.num_hidden_layers) o.push_back(rms_op(c.hidden_size));
    return o;
  } else if (path == "norm") {
    return {rms_op(c.hidden_size)};
  } else if (path == "embed_tokens") {
    return {elementwise_op("embedding gather (exact)")};
  } else if (path == "rotary_emb.cos" || path == "rotary_emb.sin") {
    return {{"cos/sin of an fp32 angle", 1, 1, true}};
  }
  throw Error("tolerance policy: no op chain for text-encoder module '" + path + "'");
}

Budget text_encoder_module_budget(Tier tier, const std::string& path, const Qwen3Config& cfg, int64_t seq_len) {
  return budget_for(tier, text_encoder_module_ops(path, cfg, seq_len));
}

}  // namespace zimage::numerics
