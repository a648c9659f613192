#include "text_encoder/qwen3_model.h"

#include <algorithm>

#include <filesystem>

#include "io/safetensors.h"

namespace zimage {

namespace {

// A ParamSource seen through a name map (Qwen3ForCausalLM's "model." prefix
// stripped, lm_head dropped).
class RenamedSource : public ParamSource {
 public:
  RenamedSource(std::shared_ptr<ParamSource> inner, std::map<std::string, std::string> names)
      : inner_(std::move(inner)), names_(std::move(names)) {}
  std::map<std::string, Shape> shapes() const override {
    const auto in = inner_->shapes();
    std::map<std::string, Shape> out;
    for (const auto& [ours, theirs] : names_) out[ours] = in.at(theirs);
    return out;
  }
  Tensor<double> load(const std::string& name) const override { return inner_->load(at(name)); }
  Tensor<float> load_float(const std::string& name) const override { return inner_->load_float(at(name)); }
  const TensorView* view(const std::string& name) const override { return inner_->view(at(name)); }
  std::string describe() const override { return inner_->describe(); }

 private:
  const std::string& at(const std::string& name) const {
    auto it = names_.find(name);
    ZIMAGE_CHECK(it != names_.end(), describe() + ": no tensor '" + name + "'");
    return it->second;
  }
  std::shared_ptr<ParamSource> inner_;
  std::map<std::string, std::string> names_;
};

}  // namespace

// Ref: modeling_qwen3.py Qwen3Model.__init__ (Qwen3DecoderLayer, Qwen3Attention, Qwen3MLP, Qwen3RMSNorm).
std::map<std::string, Shape> qwen3_parameter_shapes(const Qwen3Config& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim(), D = c.head_dim;
  std::map<std::string, Shape> p;
  p["embed_tokens.weight"] = {c.vocab_size, C};
  p["norm.weight"] = {C};
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    p[l + "input_layernorm.weight"] = {C};
    p[l + "post_attention_layernorm.weight"] = {C};
    p[l + "self_attn.q_proj.weight"] = {QD, C};
    p[l + "self_attn.k_proj.weight"] = {KD, C};
    p[l + "self_attn.v_proj.weight"] = {KD, C};
    p[l + "self_attn.o_proj.weight"] = {C, QD};
    if (c.attention_bias) {
      p[l + "self_attn.q_proj.bias"] = {QD};
      p[l + "self_attn.k_proj.bias"] = {KD};
      p[l + "self_attn.v_proj.bias"] = {KD};
      p[l + "self_attn.o_proj.bias"] = {C};
    }
    p[l + "self_attn.q_norm.weight"] = {D};
    p[l + "self_attn.k_norm.weight"] = {D};
    p[l + "mlp.gate_proj.weight"] = {F, C};
    p[l + "mlp.up_proj.weight"] = {F, C};
    p[l + "mlp.down_proj.weight"] = {C, F};
  }
  return p;
}

int qwen3_hidden_index(const Qwen3Config& cfg, int k) {
  const int n = cfg.num_hidden_layers;
  ZIMAGE_CHECK(k >= -(n + 1) && k <= n, "hidden layer " + std::to_string(k) + " does not exist: a Qwen3 text encoder with " +
                                            std::to_string(n) + " layers has hidden_states " + std::to_string(-(n + 1)) +
                                            ".." + std::to_string(n) + " (0 = embeddings, -1 = after the final norm)");
  return k < 0 ? k + n + 1 : k;
}

Qwen3TextEncoder::Qwen3TextEncoder(Qwen3Config cfg, std::shared_ptr<ParamSource> params) : cfg_(std::move(cfg)) {
  cfg_.validate(params->describe());
  const auto expected = qwen3_parameter_shapes(cfg_);
  const auto have = params->shapes();
  const bool prefixed = !have.count("embed_tokens.weight") && have.count("model.embed_tokens.weight");
  if (prefixed || have.count("lm_head.weight")) {
    std::map<std::string, std::string> names;
    for (const auto& [name, shape] : have) {
      if (name == "lm_head.weight") continue;
      const std::string ours = prefixed && name.rfind("model.", 0) == 0 ? name.substr(6) : name;
      names[ours] = name;
    }
    params = std::make_shared<RenamedSource>(params, std::move(names));
  }
  check_complete(*params, expected, "Qwen3Model");
  params_ = std::move(params);
}

Qwen3TextEncoder Qwen3TextEncoder::open_folder(const std::string& dir) {
  const std::filesystem::path d(dir);
  Qwen3Config cfg = Qwen3Config::from_file((d / "config.json").string());
  return Qwen3TextEncoder(std::move(cfg), open_weight_folder(dir, "model"));
}

template <class T>
Tensor<T> Qwen3TextEncoder::param(const std::string& name) const {
  if constexpr (std::is_same_v<T, float>) return params_->load_float(name);
  else return params_->load(name).template cast<T>();
}

template <class T>
Qwen3LayerW<T> Qwen3TextEncoder::layer(int i) const {
  const std::string l = "layers." + std::to_string(i) + ".";
  auto lin = [&](const std::string& n) {
    LinearW<T> w;
    w.weight = param<T>(l + n + ".weight");
    if (cfg_.attention_bias && n.rfind("self_attn.", 0) == 0) w.bias = param<T>(l + n + ".bias");
    return w;
  };
  Qwen3LayerW<T> w;
  w.input_layernorm = param<T>(l + "input_layernorm.weight");
  w.post_attention_layernorm = param<T>(l + "post_attention_layernorm.weight");
  w.self_attn.q_proj = lin("self_attn.q_proj");
  w.self_attn.k_proj = lin("self_attn.k_proj");
  w.self_attn.v_proj = lin("self_attn.v_proj");
  w.self_attn.o_proj = lin("self_attn.o_proj");
  w.self_attn.q_norm = param<T>(l + "self_attn.q_norm.weight");
  w.self_attn.k_norm = param<T>(l + "self_attn.k_norm.weight");
  w.mlp.gate_proj = lin("mlp.gate_proj");
  w.mlp.up_proj = lin("mlp.up_proj");
  w.mlp.down_proj = lin("mlp.down_proj");
  return w;
}

template <class T>
Tensor<T> Qwen3TextEncoder::embed(const Tensor<int32_t>& ids) const {
  const int64_t V = cfg_.vocab_size, C = cfg_.hidden_size;
  const TensorView* v = params_->view("embed_tokens.weight");
  if (!v) return qwen3_embedding(ids, param<T>("embed_tokens.weight"));
  Tensor<T> out({ids.dim(0), ids.dim(1), C});
  const size_t row_bytes = size_t(C) * dtype_size(v->dtype);
  for (int64_t n = 0; n < ids.numel(); ++n) {
    ZIMAGE_CHECK(ids[n] >= 0 && ids[n] < V, "embed_tokens: token id " + std::to_string(ids[n]) + " at flat index " +
                                                std::to_string(n) + " is outside the vocabulary of " + std::to_string(V));
    TensorView row = *v;
    row.shape = {C};
    row.data = v->data + size_t(ids[n]) * row_bytes;
    row.nbytes = row_bytes;
    const Tensor<T> r = to_tensor<T>(row);
    std::copy(r.data.begin(), r.data.end(), out.ptr() + n * C);
  }
  return out;
}

template <class T>
Tensor<T> Qwen3TextEncoder::hidden_state(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask, int k,
                                         Activations<T>* acts) const {
  return std::move(hidden_states<T>(ids, attention_mask, std::vector<int>{k}, acts)[0]);
}

template <class T>
std::vector<Tensor<T>> Qwen3TextEncoder::hidden_states(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask,
                                                       const std::vector<int>& ks, Activations<T>* acts) const {
  ZIMAGE_CHECK(ids.ndim() == 2 && attention_mask.shape == ids.shape,
               "text encoder: input_ids " + shape_str(ids.shape) + " and attention_mask " + shape_str(attention_mask.shape) +
                   " must both be [B, L]");
  ZIMAGE_CHECK(!ks.empty(), "text encoder: no hidden state requested");
  const int n = cfg_.num_hidden_layers;
  std::vector<int> idx;
  for (int k : ks) {
    int i = qwen3_hidden_index(cfg_, k);
    if (mutated(Mutation::TextHiddenLayerLast) && i == n - 1) i = n;
    idx.push_back(i);
  }
  const int last = *std::max_element(idx.begin(), idx.end());
  std::vector<Tensor<T>> out(idx.size());
  auto keep = [&](int at, const Tensor<T>& h) {
    for (size_t j = 0; j < idx.size(); ++j)
      if (idx[j] == at) out[j] = h;
  };
  Tensor<T> h = embed<T>(ids);
  record(acts, "embed_tokens", h);
  keep(0, h);
  if (last == 0) return out;
  const auto [cos, sin] = qwen3_rotary_embedding<T>(cfg_, ids.dim(1));
  const int run = last == n ? n : last;  // layers 0..run-1
  for (int i = 0; i < run; ++i) {
    const std::string path = "layers." + std::to_string(i);
    h = qwen3_decoder_layer(h, layer<T>(i), attention_mask, cos, sin, cfg_, acts, path);
    if (i + 1 < n) keep(i + 1, h);  // hidden_states[n] is after the final norm, not layer n-1's output
  }
  if (last == n) {
    h = qwen3_rms_norm(h, param<T>("norm.weight"), cfg_.rms_norm_eps);
    record(acts, "norm", h);
    keep(n, h);
  }
  return out;
}

template Tensor<float> Qwen3TextEncoder::param<float>(const std::string&) const;
template Tensor<double> Qwen3TextEncoder::param<double>(const std::string&) const;
template Qwen3LayerW<float> Qwen3TextEncoder::layer<float>(int) const;
template Qwen3LayerW<double> Qwen3TextEncoder::layer<double>(int) const;
template Tensor<float> Qwen3TextEncoder::embed<float>(const Tensor<int32_t>&) const;
template Tensor<double> Qwen3TextEncoder::embed<double>(const Tensor<int32_t>&) const;
template Tensor<float> Qwen3TextEncoder::hidden_state<float>(const Tensor<int32_t>&, const Tensor<int32_t>&, int,
                                                             Activations<float>*) const;
template Tensor<double> Qwen3TextEncoder::hidden_state<double>(const Tensor<int32_t>&, const Tensor<int32_t>&, int,
                                                               Activations<double>*) const;
template std::vector<Tensor<float>> Qwen3TextEncoder::hidden_states<float>(const Tensor<int32_t>&, const Tensor<int32_t>&,
                                                                           const std::vector<int>&, Activations<float>*) const;
template std::vector<Tensor<double>> Qwen3TextEncoder::hidden_states<double>(const Tensor<int32_t>&, const Tensor<int32_t>&,
                                                                             const std::vector<int>&, Activations<double>*) const;

}  // namespace zimage
