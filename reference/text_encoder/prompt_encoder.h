// Prompt -> embeddings as ZImagePipeline._encode_prompt does it
// (diffusers/pipelines/z_image/pipeline_z_image.py):
//   text = apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
//                              enable_thinking=True)            (qwen3_chat_prompt)
//   ids, mask = tokenizer(texts, padding="max_length", max_length=L, truncation=True)
//   h = text_encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
//   embeds[i] = h[i][mask[i]]                                   (padded rows dropped per item)
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "text_encoder/qwen3_model.h"
#include "text_encoder/tokenizer.h"

namespace zimage {

// The keys of tokenizer_config.json that padding and truncation read.
struct TokenizerConfig {
  std::string pad_token = "<|endoftext|>";
  std::string padding_side = "right", truncation_side = "right";
  static TokenizerConfig from_file(const std::string& path);  // absent keys keep the defaults above
};

// The text-encoder knobs (docs/experiments.md, "Text-encoder knobs"). The defaults are the pipeline's.
struct EncodeOptions {
  int max_sequence_length = 512;                 // padding="max_length", truncation=True
  std::vector<int> hidden_layers = {-2};         // hidden_states[k]; several: their weighted mean
  std::vector<double> hidden_layer_weights;      // one per layer; empty: equal weights
  std::optional<std::string> think;              // absent: no block; "": the empty block; text: a block with it
  std::optional<std::string> system_prompt;      // absent: no system message (qwen3_chat_prompt)
  std::optional<std::string> padding_side;       // "left" | "right"; absent: tokenizer_config.json's
};

// The weights of the mix, normalized: w_i / sum(w), equal (1/n) when `weights` is empty.
// One line and an Error for: no layer; a weight count other than the layer count; a weight
// that is not finite or is negative; weights summing to 0.
std::vector<double> hidden_layer_mix_weights(const std::vector<int>& layers, const std::vector<double>& weights);
// "left" or "right", else one line naming `what`.
void check_padding_side(const std::string& side, const std::string& what);

struct TokenizedBatch {
  Tensor<int32_t> input_ids, attention_mask;  // [B, L]
  std::vector<int64_t> dropped;               // tokens cut by truncation, per item
};

// The columns at the end of the batch that are padding in every item (attention_mask 0): L minus
// one past the last column any item uses; 0 with left padding (each item's last token is in the
// last column). An all-padding batch keeps one column.
int64_t trailing_pad_columns(const Tensor<int32_t>& attention_mask);
// The batch without its last `n` columns.
TokenizedBatch drop_last_columns(const TokenizedBatch& tb, int64_t n);

class PromptEncoder {
 public:
  PromptEncoder(Qwen2Tokenizer tokenizer, TokenizerConfig tcfg, std::shared_ptr<Qwen3TextEncoder> te)
      : tok_(std::move(tokenizer)), tcfg_(std::move(tcfg)), te_(std::move(te)) {}
  // A diffusers pipeline folder: DIR/tokenizer/{tokenizer.json, tokenizer_config.json}
  // and DIR/text_encoder/ (config.json + model.safetensors or shards).
  static PromptEncoder open_pipeline(const std::string& dir);
  static bool pipeline_has_text_encoder(const std::string& dir);
  // The same from the two folders themselves.
  static PromptEncoder open(const std::string& tokenizer_dir, const std::string& text_encoder_dir);
  // The tokenizer folder with a text encoder already made (e.g. synthetic weights in memory).
  static PromptEncoder open(const std::string& tokenizer_dir, std::shared_ptr<Qwen3TextEncoder> te);

  const Qwen2Tokenizer& tokenizer() const { return tok_; }
  const Qwen3TextEncoder& text_encoder() const { return *te_; }

  // Where hidden_states are computed: by default the text encoder above (CPU, in T); a backend
  // (the CUDA text encoder, gpu::cuda_text_encoder) takes ids and mask [B, L] and the hidden
  // indices and returns hidden_states[k] [B, L, C] in fp32 for each, as
  // Qwen3TextEncoder::hidden_states. With a backend, encode<float> uses it (encode<double> refuses),
  // and check_finite screens its outputs ("hidden_states[k]"), not the modules inside.
  using HiddenStatesFn = std::function<std::vector<Tensor<float>>(const Tensor<int32_t>& ids, const Tensor<int32_t>& mask,
                                                                  const std::vector<int>& ks)>;
  void set_hidden_states_backend(HiddenStatesFn f) { backend_ = std::move(f); }
  const HiddenStatesFn& hidden_states_backend() const { return backend_; }

  // Ref: PreTrainedTokenizerBase.__call__(texts, padding="max_length", max_length, truncation=True).
  // `warn` receives one line per truncated item naming how many tokens were dropped.
  // `padding_side` overrides tokenizer_config.json's ("left": pads first, as transformers' padding_side="left").
  TokenizedBatch tokenize(const std::vector<std::string>& texts, int max_length,
                          const std::function<void(const std::string&)>& warn = {},
                          const std::optional<std::string>& padding_side = std::nullopt) const;

  // Ref: ZImagePipeline._encode_prompt. Per prompt, [tokens, C] of hidden_states[hidden_layer].
  template <class T>
  std::vector<Tensor<T>> encode(const std::vector<std::string>& prompts, int max_sequence_length = 512,
                                int hidden_layer = -2, const std::optional<std::string>& think = std::nullopt,
                                const std::function<void(const std::string&)>& warn = {},
                                Activations<T>* acts = nullptr) const;
  // The same with every knob. With several hidden layers, per token
  //   embeds = sum_i hidden_states[k_i] * T(w_i / sum(w))   (in the order given, accumulated in T);
  // one layer is hidden_states[k] itself (its weight unused), bit for bit the path above.
  // Trailing padding: the columns after the last real token of every item (right padding pads
  // them to max_sequence_length) are not run through the text encoder (trailing_pad_columns):
  // no real token reads them (they are masked keys of every attention, and each token's other
  // operations are its own), so the real tokens' states are the same; diffusers runs all
  // max_sequence_length. With `acts` (recorded activations, compared with diffusers' own) every
  // column runs, as diffusers computes them.
  template <class T>
  std::vector<Tensor<T>> encode(const std::vector<std::string>& prompts, const EncodeOptions& opt,
                                const std::function<void(const std::string&)>& warn = {},
                                Activations<T>* acts = nullptr) const;

 private:
  Qwen2Tokenizer tok_;
  TokenizerConfig tcfg_;
  std::shared_ptr<Qwen3TextEncoder> te_;
  HiddenStatesFn backend_;
};

}  // namespace zimage
