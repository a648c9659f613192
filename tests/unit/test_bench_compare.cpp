// bench/compare, the regression checker for benchmark JSON files: a slowdown
// beyond the threshold and the noise is flagged (exit 1), one inside the
// noise is not, and bad input is one line with exit 2.
#include <fstream>

#include "support/cli_runner.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

// A Google Benchmark JSON file with median and stddev aggregates (milliseconds).
std::string write_json(const fs::path& p, const std::vector<std::tuple<std::string, double, double>>& rows) {
  std::ofstream f(p);
  f << "{\"context\": {}, \"benchmarks\": [";
  bool first = true;
  for (const auto& [name, median, sd] : rows) {
    for (const char* agg : {"median", "stddev"}) {
      f << (first ? "" : ",") << "{\"name\": \"" << name << "_" << agg << "\", \"run_name\": \"" << name
        << "\", \"run_type\": \"aggregate\", \"aggregate_name\": \"" << agg << "\", \"real_time\": "
        << (std::string(agg) == "median" ? median : sd) << ", \"time_unit\": \"ms\"}";
      first = false;
    }
  }
  f << "]}";
  return p.string();
}

testing::CliResult run_compare(const std::string& args) {
  const fs::path errf = testing::scratch_dir("bench_compare") / "out.txt";
  const int raw = std::system(("python3 " ZIMAGE_SOURCE_DIR "/bench/compare " + args + " >" + errf.string() + " 2>&1").c_str());
  std::ifstream in(errf);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::printf("%s", out.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : 128, out, ""};  // both streams, as err
}

class BenchCompare : public ::testing::Test {
 protected:
  fs::path dir = testing::scratch_dir("bench_compare");
  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(BenchCompare, SameTimesPass) {
  const auto a = write_json(dir / "a.json", {{"BM_A", 10.0, 0.1}, {"BM_B", 5.0, 0.05}});
  EXPECT_EQ(run_compare(a + " " + a).status, 0);
}

TEST_F(BenchCompare, SlowdownBeyondThresholdAndNoiseIsFlagged) {
  const auto a = write_json(dir / "a.json", {{"BM_A", 10.0, 0.1}, {"BM_B", 5.0, 0.05}});
  const auto b = write_json(dir / "b.json", {{"BM_A", 12.0, 0.1}, {"BM_B", 5.0, 0.05}});
  const auto r = run_compare(a + " " + b);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("BM_A"), std::string::npos);
  EXPECT_NE(r.err.find("SLOWER"), std::string::npos);
  EXPECT_NE(r.err.find("1 regression"), std::string::npos) << r.err;
}

TEST_F(BenchCompare, SlowdownInsideTheNoiseIsNotFlagged) {
  const auto a = write_json(dir / "a.json", {{"BM_A", 10.0, 2.0}});
  const auto b = write_json(dir / "b.json", {{"BM_A", 12.0, 2.0}});
  EXPECT_EQ(run_compare(a + " " + b).status, 0);
}

TEST_F(BenchCompare, SlowdownBelowThresholdIsNotFlagged) {
  const auto a = write_json(dir / "a.json", {{"BM_A", 10.0, 0.001}});
  const auto b = write_json(dir / "b.json", {{"BM_A", 10.3, 0.001}});
  EXPECT_EQ(run_compare(a + " " + b + " --threshold 0.05").status, 0);
  EXPECT_EQ(run_compare(a + " " + b + " --threshold 0.01").status, 1);
}

// A row that reported an error (a CUDA row skipped by validation: time 0) is
// listed and never compared, on either side.
TEST_F(BenchCompare, ErroredRowIsNotComparedEitherWay) {
  const auto ok = write_json(dir / "ok.json", {{"BM_A", 10.0, 0.1}, {"BM_B", 5.0, 0.05}});
  const fs::path err = dir / "err.json";
  std::ofstream(err) << "{\"context\": {}, \"benchmarks\": [{\"name\": \"BM_A\", \"run_name\": \"BM_A\", "
                        "\"run_type\": \"iteration\", \"error_occurred\": true, \"error_message\": "
                        "\"failed validation: rel_rms 1e-2\", \"real_time\": 0, \"time_unit\": \"ms\"}, "
                        "{\"name\": \"BM_B\", \"run_name\": \"BM_B\", \"run_type\": \"iteration\", "
                        "\"real_time\": 5.0, \"time_unit\": \"ms\"}]}";
  for (const std::string& args : {ok + " " + err.string(), err.string() + " " + ok}) {
    const auto r = run_compare(args);
    EXPECT_EQ(r.status, 0) << args;
    EXPECT_NE(r.err.find("not compared: error in"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("failed validation"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("SLOWER"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("faster"), std::string::npos) << r.err;
  }
}

TEST_F(BenchCompare, BadInputIsOneLineAndExitTwo) {
  std::ofstream(dir / "bad.json") << "{not json";
  const auto a = write_json(dir / "a.json", {{"BM_A", 10.0, 0.1}});
  for (const std::string& args : {a + " " + (dir / "bad.json").string(), a + " " + (dir / "missing.json").string(),
                                  a + " " + a + " --threshold x", a}) {
    const auto r = run_compare(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace zimage
