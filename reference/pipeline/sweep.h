// The grid and the measures of `zimage sweep` (docs/experiments.md, "zimage sweep"): a controlled
// comparison of knob values and seeds. The grid's rows are, for each prompt, the baseline (every
// option as given) and then every combination of the varied knobs' values; its columns are the
// seeds. Each cell is one generate() run; these functions say what it measures.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/png.h"
#include "pipeline/dit_model.h"

namespace zimage {

// ---- The grid -------------------------------------------------------------

// One --vary KNOB=V1,V2,...: values are split at ';' when the list holds one (for values that hold
// commas: "hidden-layers=-2;-2,-3"), else at ','. A value may be empty only in a list of several
// ("think=;a cat": the empty think block, then one with content). "@none" means the option absent.
struct SweepAxis {
  std::string knob;                 // the generate option without its "--" ("shift", "think")
  std::vector<std::string> values;  // in the order given
};
inline constexpr const char* kSweepNone = "@none";
// Throws naming --vary: no '=', no knob name, no value, a value repeated.
SweepAxis parse_sweep_axis(const std::string& spec);

// --seeds: "0-3" (inclusive), "1,5,9", "0-2,7". Throws naming --seeds: empty, not a number, a
// reversed range, a seed repeated, more than 10000 seeds.
std::vector<uint64_t> parse_seed_list(const std::string& spec);

struct SweepRow {
  int prompt = 0;                   // index into the prompts
  std::vector<std::string> values;  // one per axis; empty: the baseline row
  bool baseline() const { return values.empty(); }
  // "baseline" or "shift=3 think=@none" (axes in order).
  std::string label(const std::vector<SweepAxis>& axes) const;
};
// For each prompt, the baseline row then every combination of the axes' values (the first axis
// varies slowest). Throws when there are no prompts, an axis has no values, or there would be
// more than 100000 rows.
std::vector<SweepRow> sweep_rows(int prompts, const std::vector<SweepAxis>& axes);

// ---- What each cell measures ------------------------------------------------

// Per channel of an 8-bit RGB image: mean and standard deviation (population, / N) of its values
// 0..255.
struct ImageStats {
  std::array<double, 3> mean{}, std{};
};
ImageStats image_stats(const Image8& img);

// Mean over every pixel and channel of |a - b| in 8-bit units; nullopt when the sizes differ.
std::optional<double> mean_abs_diff(const Image8& a, const Image8& b);

// Mean and population standard deviation of every element.
struct MeanStd {
  double mean = 0, std = 0;
};
template <class T>
MeanStd mean_std(const Tensor<T>& t);

// The mean of the first `rows` rows of t, read as [rows..., C] with C its last dimension.
template <class T>
std::vector<double> token_mean(const Tensor<T>& t, int64_t rows);

// Cosine similarity of a and b; nullopt when their sizes differ or a norm is 0.
std::optional<double> cosine_similarity(const std::vector<double>& a, const std::vector<double>& b);

// The caption of the first item of a transformer's first forward, as token means (over its real
// tokens, pad rows excluded): what the cell's prompt embedding is to the DiT.
struct CaptionProbe {
  int64_t tokens = 0;             // the caption's length as the DiT received it (after --long-prompt-mode)
  std::vector<double> embedding;  // mean of cap_feats[0]: the prompt embedding
  // Mean of the caption rows as the main layers receive them: after the last context_refiner block,
  // or after cap_embedder with --skip-context-refiner. Empty when the model records no module
  // outputs (the CUDA model).
  std::vector<double> refined;
};

// A DitModel that forwards to `inner` and, on its first forward, fills *probe (which must outlive it).
// That forward records only the module output it needs, into its own Activations: a caller's
// `acts` gets its first_nonfinite report but no stored outputs of that forward (generate() passes
// acts only to check finiteness).
template <class T>
std::unique_ptr<DitModel<T>> probe_captions(std::unique_ptr<DitModel<T>> inner, CaptionProbe* probe);

}  // namespace zimage
