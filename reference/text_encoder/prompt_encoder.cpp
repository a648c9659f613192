#include "text_encoder/prompt_encoder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "core/choices.h"

namespace zimage {

namespace fs = std::filesystem;

TokenizerConfig TokenizerConfig::from_file(const std::string& path) {
  TokenizerConfig c;
  std::ifstream in(path);
  ZIMAGE_CHECK(in, path + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": not valid JSON");
  }
  auto str = [&](const char* key, std::string& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    const nlohmann::json& v = j[key];
    if (v.is_string()) out = v.get<std::string>();
    else if (v.is_object() && v.contains("content") && v["content"].is_string()) out = v["content"].get<std::string>();
    else throw Error(path + ": key '" + key + "' is neither a string nor a token object");
  };
  str("pad_token", c.pad_token);
  str("padding_side", c.padding_side);
  str("truncation_side", c.truncation_side);
  for (const std::string* side : {&c.padding_side, &c.truncation_side})
    ZIMAGE_CHECK(*side == "left" || *side == "right", path + ": padding/truncation side '" + *side + "' is not left or right");
  return c;
}

std::vector<double> hidden_layer_mix_weights(const std::vector<int>& layers, const std::vector<double>& weights) {
  ZIMAGE_CHECK(!layers.empty(), "--hidden-layers: no layer given");
  const size_t n = layers.size();
  ZIMAGE_CHECK(weights.empty() || weights.size() == n, "--hidden-layer-weights: " + std::to_string(weights.size()) +
                                                           " weights for " + std::to_string(n) + " hidden layers");
  std::vector<double> w = weights.empty() ? std::vector<double>(n, 1.0) : weights;
  double sum = 0;
  for (double x : w) {
    ZIMAGE_CHECK(std::isfinite(x) && x >= 0, "--hidden-layer-weights: each weight must be finite and >= 0, got " +
                                                 std::to_string(x));
    sum += x;
  }
  ZIMAGE_CHECK(sum > 0, "--hidden-layer-weights: the weights sum to 0");
  for (double& x : w) x /= sum;
  return w;
}

void check_padding_side(const std::string& side, const std::string& what) {
  require_choice(side, {"left", "right"}, what);
}

int64_t trailing_pad_columns(const Tensor<int32_t>& mask) {
  ZIMAGE_CHECK(mask.ndim() == 2, "trailing_pad_columns: attention_mask " + shape_str(mask.shape) + " is not [B, L]");
  const int64_t B = mask.dim(0), L = mask.dim(1);
  int64_t used = 0;  // one past the last column any item uses
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = L; l > used; --l)
      if (mask[b * L + l - 1] != 0) {
        used = l;
        break;
      }
  return L - std::max<int64_t>(used, std::min<int64_t>(L, 1));
}

TokenizedBatch drop_last_columns(const TokenizedBatch& tb, int64_t n) {
  const int64_t B = tb.input_ids.dim(0), L = tb.input_ids.dim(1), keep = L - n;
  ZIMAGE_CHECK(n >= 0 && keep >= 0 && tb.attention_mask.shape == tb.input_ids.shape,
               "drop_last_columns: " + std::to_string(n) + " of " + std::to_string(L) + " columns");
  if (n == 0) return tb;
  TokenizedBatch out;
  out.dropped = tb.dropped;
  out.input_ids = Tensor<int32_t>({B, keep});
  out.attention_mask = Tensor<int32_t>({B, keep});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < keep; ++l) {
      out.input_ids[b * keep + l] = tb.input_ids[b * L + l];
      out.attention_mask[b * keep + l] = tb.attention_mask[b * L + l];
    }
  return out;
}

bool PromptEncoder::pipeline_has_text_encoder(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / "text_encoder" / "config.json", ec) && fs::exists(fs::path(dir) / "tokenizer" / "tokenizer.json", ec);
}

PromptEncoder PromptEncoder::open(const std::string& tokenizer_dir, const std::string& text_encoder_dir) {
  return open(tokenizer_dir, std::make_shared<Qwen3TextEncoder>(Qwen3TextEncoder::open_folder(text_encoder_dir)));
}

PromptEncoder PromptEncoder::open(const std::string& tokenizer_dir, std::shared_ptr<Qwen3TextEncoder> te) {
  const fs::path t(tokenizer_dir);
  std::error_code ec;
  ZIMAGE_CHECK(fs::exists(t / "tokenizer.json", ec), tokenizer_dir + ": no tokenizer.json");
  Qwen2Tokenizer tok = Qwen2Tokenizer::from_file((t / "tokenizer.json").string());
  TokenizerConfig tc;
  if (fs::exists(t / "tokenizer_config.json", ec)) tc = TokenizerConfig::from_file((t / "tokenizer_config.json").string());
  return PromptEncoder(std::move(tok), std::move(tc), std::move(te));
}

PromptEncoder PromptEncoder::open_pipeline(const std::string& dir) {
  const fs::path d(dir);
  return open((d / "tokenizer").string(), (d / "text_encoder").string());
}

TokenizedBatch PromptEncoder::tokenize(const std::vector<std::string>& texts, int L,
                                       const std::function<void(const std::string&)>& warn,
                                       const std::optional<std::string>& padding_side) const {
  if (padding_side) check_padding_side(*padding_side, "padding side");
  const std::string& side = padding_side ? *padding_side : tcfg_.padding_side;
  ZIMAGE_CHECK(L > 0, "max_sequence_length must be positive, got " + std::to_string(L));
  const auto pad = tok_.token_to_id(tcfg_.pad_token);
  ZIMAGE_CHECK(pad.has_value(), "tokenizer: pad token '" + tcfg_.pad_token + "' is not in the vocabulary");
  const int64_t B = int64_t(texts.size());
  TokenizedBatch out{Tensor<int32_t>({B, int64_t(L)}, *pad), Tensor<int32_t>({B, int64_t(L)}, 0), {}};
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> ids = tok_.encode(texts[size_t(b)]);
    const int64_t n = int64_t(ids.size()), dropped = std::max<int64_t>(0, n - L);
    if (dropped) {
      if (tcfg_.truncation_side == "right") ids.resize(size_t(L));
      else ids.erase(ids.begin(), ids.begin() + dropped);
      if (warn)
        warn("prompt " + std::to_string(b) + " is " + std::to_string(n) + " tokens (chat template included), longer than max_sequence_length " +
             std::to_string(L) + ": truncated, " + std::to_string(dropped) + " tokens dropped");
    }
    out.dropped.push_back(dropped);
    const int64_t off = side == "right" ? 0 : L - int64_t(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      out.input_ids[b * L + off + int64_t(i)] = ids[i];
      out.attention_mask[b * L + off + int64_t(i)] = 1;
    }
  }
  return out;
}

template <class T>
std::vector<Tensor<T>> PromptEncoder::encode(const std::vector<std::string>& prompts, int max_sequence_length, int hidden_layer,
                                             const std::optional<std::string>& think,
                                             const std::function<void(const std::string&)>& warn,
                                             Activations<T>* acts) const {
  EncodeOptions opt;
  opt.max_sequence_length = max_sequence_length;
  opt.hidden_layers = {hidden_layer};
  opt.think = think;
  return encode<T>(prompts, opt, warn, acts);
}

template <class T>
std::vector<Tensor<T>> PromptEncoder::encode(const std::vector<std::string>& prompts, const EncodeOptions& opt,
                                             const std::function<void(const std::string&)>& warn,
                                             Activations<T>* acts) const {
  const std::vector<double> w = hidden_layer_mix_weights(opt.hidden_layers, opt.hidden_layer_weights);
  for (int k : opt.hidden_layers) (void)qwen3_hidden_index(te_->config(), k);  // an unknown layer fails before any work
  std::vector<std::string> texts;
  for (const auto& p : prompts) texts.push_back(qwen3_chat_prompt(p, opt.think, opt.system_prompt));
  TokenizedBatch tb = tokenize(texts, opt.max_sequence_length, warn, opt.padding_side);
  if (!acts) tb = drop_last_columns(tb, trailing_pad_columns(tb.attention_mask));
  std::vector<Tensor<T>> hs;
  if (backend_) {
    if constexpr (std::is_same_v<T, float>) {
      hs = backend_(tb.input_ids, tb.attention_mask, opt.hidden_layers);
      ZIMAGE_CHECK(hs.size() == opt.hidden_layers.size(), "text encoder backend: " + std::to_string(hs.size()) +
                                                              " hidden states for " +
                                                              std::to_string(opt.hidden_layers.size()) + " layers");
      for (size_t i = 0; i < hs.size(); ++i) record(acts, "hidden_states[" + std::to_string(opt.hidden_layers[i]) + "]", hs[i]);
    } else {
      throw Error("the text encoder backend computes float32 only, not float64");
    }
  } else {
    hs = te_->hidden_states<T>(tb.input_ids, tb.attention_mask, opt.hidden_layers, acts);
  }
  Tensor<T> h = std::move(hs[0]);
  if (hs.size() > 1) {  // sum_i h_i * T(w_i), as torch's hs[k0] * w0 + hs[k1] * w1 + ...
    const T w0 = T(w[0]);
    for (auto& x : h.data) x *= w0;
    for (size_t i = 1; i < hs.size(); ++i) {
      const T wi = T(w[i]);
      for (size_t j = 0; j < h.data.size(); ++j) h.data[j] += hs[i].data[j] * wi;
    }
  }
  const int64_t B = h.dim(0), L = h.dim(1), C = h.dim(2);
  std::vector<Tensor<T>> out;
  for (int64_t b = 0; b < B; ++b) {
    Tensor<T> e;
    e.shape = {0, C};
    for (int64_t l = 0; l < L; ++l)
      if (tb.attention_mask[b * L + l]) e.data.insert(e.data.end(), h.ptr() + (b * L + l) * C, h.ptr() + (b * L + l + 1) * C);
    e.shape[0] = int64_t(e.data.size()) / C;
    out.push_back(std::move(e));
  }
  return out;
}

template std::vector<Tensor<float>> PromptEncoder::encode<float>(const std::vector<std::string>&, int, int,
                                                                 const std::optional<std::string>&,
                                                                 const std::function<void(const std::string&)>&,
                                                                 Activations<float>*) const;
template std::vector<Tensor<double>> PromptEncoder::encode<double>(const std::vector<std::string>&, int, int,
                                                                   const std::optional<std::string>&,
                                                                   const std::function<void(const std::string&)>&,
                                                                   Activations<double>*) const;
template std::vector<Tensor<float>> PromptEncoder::encode<float>(const std::vector<std::string>&, const EncodeOptions&,
                                                                 const std::function<void(const std::string&)>&,
                                                                 Activations<float>*) const;
template std::vector<Tensor<double>> PromptEncoder::encode<double>(const std::vector<std::string>&, const EncodeOptions&,
                                                                   const std::function<void(const std::string&)>&,
                                                                   Activations<double>*) const;

}  // namespace zimage
