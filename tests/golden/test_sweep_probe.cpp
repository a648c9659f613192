// probe_captions (pipeline/sweep.h) on the tiny transformer of golden/models/pipeline_tiny: the
// wrapped model's outputs are bitwise the model's, and what the probe keeps is the mean of the
// caption's real rows (pad rows excluded) of cap_feats[0] and of the module output the main layers
// receive: the last context_refiner block, or cap_embedder with --skip-context-refiner. Only the
// first forward is probed.
#include "dit/model_folder.h"
#include "pipeline/dit_model.h"
#include "pipeline/sweep.h"
#include "support/test_support.h"

namespace zimage {
namespace {

const std::string kTiny = std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny/transformer";

DitInputs<double> inputs(int64_t caption, uint64_t seed) {
  DitInputs<double> in;
  in.x.push_back(testing::randn<double>({16, 1, 8, 8}, seed));
  in.cap_feats.push_back(testing::randn<double>({caption, 32}, seed + 1));  // 13 rows: padded to 32 inside
  in.x.push_back(testing::randn<double>({16, 1, 8, 8}, seed + 2));
  in.cap_feats.push_back(testing::randn<double>({caption + 5, 32}, seed + 3));
  in.t = Tensor<double>({2}, {0.5, 0.5});
  return in;
}

void check_probe(bool skip_refiner) {
  const ModelFolder folder = open_model_folder(kTiny);
  ForwardOptions o;
  o.skip_context_refiner = skip_refiner;
  auto plain = open_dit_model<double>(folder, DitWeights::Memory);
  plain->set_forward_options(o);
  CaptionProbe probe;
  auto probed = probe_captions<double>(open_dit_model<double>(folder, DitWeights::Memory), &probe);
  probed->set_forward_options(o);
  const DitInputs<double> in = inputs(13, 7);
  Activations<double> all;
  const auto want = plain->forward(in, &all);
  const auto got = probed->forward(in, nullptr);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i].data, got[i].data) << "output " << i;
  EXPECT_EQ(probe.tokens, 13);
  EXPECT_EQ(probe.embedding, token_mean(in.cap_feats[0], 13));
  const std::string refined = skip_refiner ? "cap_embedder" : "context_refiner.1";
  ASSERT_TRUE(all.count(refined)) << refined;
  EXPECT_EQ(probe.refined, token_mean(all.at(refined), 13));
  // The mean excludes the pad rows: over 32 rows it would differ.
  const int64_t rows = all.at(refined).numel() / 64;
  ASSERT_GE(rows, 32);
  EXPECT_NE(probe.refined, token_mean(all.at(refined), 32));
  // A second forward is not probed.
  const auto first = probe.embedding;
  (void)probed->forward(inputs(20, 9), nullptr);
  EXPECT_EQ(probe.embedding, first);
  EXPECT_EQ(probe.tokens, 13);
}

TEST(SweepProbe, TinyTransformer_WithContextRefiner) { check_probe(false); }
TEST(SweepProbe, TinyTransformer_SkipContextRefiner) { check_probe(true); }

// A NaN in the input: the probed forward reports the first non-finite module as the model does.
TEST(SweepProbe, CheckFiniteReportedAsByTheModel) {
  const ModelFolder folder = open_model_folder(kTiny);
  DitInputs<double> in = inputs(13, 3);
  in.x[0][5] = std::nan("");
  Activations<double> plain_acts, probed_acts;
  plain_acts.store = probed_acts.store = false;
  plain_acts.check_finite = probed_acts.check_finite = true;
  (void)open_dit_model<double>(folder, DitWeights::Memory)->forward(in, &plain_acts);
  CaptionProbe probe;
  (void)probe_captions<double>(open_dit_model<double>(folder, DitWeights::Memory), &probe)->forward(in, &probed_acts);
  ASSERT_TRUE(plain_acts.first_nonfinite.has_value());
  ASSERT_TRUE(probed_acts.first_nonfinite.has_value());
  EXPECT_EQ(probed_acts.first_nonfinite->describe(), plain_acts.first_nonfinite->describe());
}

}  // namespace
}  // namespace zimage
