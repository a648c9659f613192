// safetensors reader/writer: round trips of every dtype, 16-bit float
// conversions, and one test per header malformation (each error names the
// file and, where there is one, the tensor).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "io/safetensors.h"
#include "support/expect_errors.h"

namespace zimage {
namespace {

using testing::error_of;

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh directory under ::testing::TempDir() per test.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "zimage_st_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Writes an 8-byte little-endian header length, the header, then data.
  std::string write_raw(const std::string& name, const std::string& header, size_t data_bytes,
                        uint64_t header_len_override = 0) {
    const std::string path = file(name);
    std::ofstream out(path, std::ios::binary);
    uint64_t n = header_len_override ? header_len_override : header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
    out << std::string(data_bytes, '\0');
    return path;
  }

  fs::path dir_;
};

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  const Tensor<float> f({2, 3}, std::vector<float>{1.0f, -2.5f, 0.1f, 3e38f, -0.0f, 1e-40f});
  const Tensor<double> d({3}, std::vector<double>{0.1, -1e300, 5e-324});
  const Tensor<float> h({4}, std::vector<float>{1.0f, -0.5f, 65504.0f, 0x1p-24f});
  const Tensor<int64_t> i64({2, 1}, std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 42});
  const Tensor<int32_t> i32({3}, std::vector<int32_t>{-7, 0, std::numeric_limits<int32_t>::max()});
  const Tensor<float> scalar({}, std::vector<float>{7.0f});
  const Tensor<float> empty({0, 3});

  SafetensorsWriter w;
  w.add("f32", f);
  w.add("f64", d, DType::F64);
  w.add("f32_from_double", d);
  w.add("bf16", h, DType::BF16);
  w.add("f16", h, DType::F16);
  w.add("i64", i64);
  w.add("i32", i32);
  w.add_raw("u8", DType::U8, {3}, {0, 128, 255});
  w.add_raw("bool", DType::BOOL, {2, 2}, {1, 0, 0, 1});
  w.add("scalar", scalar);
  w.add("empty", empty);
  const std::string path = file("all.safetensors");
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->names(), (std::vector<std::string>{"bf16", "bool", "empty", "f16", "f32", "f32_from_double", "f64",
                                                    "i32", "i64", "scalar", "u8"}));
  EXPECT_EQ(st->view("f32").dtype, DType::F32);
  EXPECT_EQ(st->get<float>("f32").data, f.data);
  EXPECT_EQ(st->get<float>("f32").shape, f.shape);
  EXPECT_EQ(bits(st->get<float>("f32")[4]), bits(-0.0f));
  EXPECT_EQ(st->get<double>("f64").data, d.data);
  EXPECT_EQ(st->view("f32_from_double").dtype, DType::F32);
  EXPECT_EQ(st->get<double>("f32_from_double")[0], double(0.1f));
  EXPECT_TRUE(std::isinf(st->get<double>("f32_from_double")[1]));
  EXPECT_EQ(st->view("bf16").dtype, DType::BF16);
  EXPECT_EQ(st->get<float>("bf16").data, (std::vector<float>{1.0f, -0.5f, 65536.0f, 0x1p-24f}));  // 65504 rounds in bf16
  EXPECT_EQ(st->get<double>("f16").data, (std::vector<double>{1.0, -0.5, 65504.0, 0x1p-24}));
  EXPECT_EQ(st->get<int64_t>("i64").data, i64.data);
  EXPECT_EQ(st->get<int64_t>("i64").shape, (Shape{2, 1}));
  EXPECT_EQ(st->get<int32_t>("i32").data, i32.data);
  EXPECT_EQ(st->get<int64_t>("i32").data, (std::vector<int64_t>{-7, 0, std::numeric_limits<int32_t>::max()}));
  EXPECT_EQ(st->get<double>("i32").data, (std::vector<double>{-7, 0, std::numeric_limits<int32_t>::max()}));
  EXPECT_EQ(st->get<int32_t>("u8").data, (std::vector<int32_t>{0, 128, 255}));
  EXPECT_EQ(st->get<float>("bool").data, (std::vector<float>{1, 0, 0, 1}));
  EXPECT_EQ(st->view("bool").dtype, DType::BOOL);
  EXPECT_EQ(st->get<float>("scalar").shape, Shape{});
  EXPECT_EQ(st->get<float>("scalar").data, std::vector<float>{7.0f});
  EXPECT_EQ(st->get<float>("empty").shape, (Shape{0, 3}));
  EXPECT_EQ(st->get<float>("empty").numel(), 0);
}

TEST_F(SafetensorsTest, MetadataRoundTripsAndHeaderIsAligned) {
  SafetensorsWriter w;
  w.set_metadata("format", "zimage-golden-v1");
  w.set_metadata("config", R"({"dim": 64, "nested": "a\"b"})");
  w.set_metadata("empty", "");
  w.set_metadata("unicode", "caf\xc3\xa9");
  w.add_raw("odd", DType::U8, {3}, {1, 2, 3});
  const std::string path = file("meta.safetensors");
  w.write(path);

  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->metadata(), (std::map<std::string, std::string>{{"format", "zimage-golden-v1"},
                                                                 {"config", R"({"dim": 64, "nested": "a\"b"})"},
                                                                 {"empty", ""},
                                                                 {"unicode", "caf\xc3\xa9"}}));
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(fs::file_size(path), 8 + n + 3);
}

TEST_F(SafetensorsTest, HeaderKeysAreSortedAndOffsetsFollowNameOrder) {
  SafetensorsWriter w;
  w.add("b", Tensor<float>({1}, 2.0f));
  w.add("a", Tensor<float>({2}, 1.0f));
  const std::string path = file("order.safetensors");
  w.write(path);
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, ' ');
  in.read(header.data(), std::streamsize(n));
  EXPECT_LT(header.find("\"a\""), header.find("\"b\""));
  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->view("a").data + 8, st->view("b").data);
}

// ---------------------------------------------------------------- 16-bit floats

TEST(Float16, Bf16EdgeCases) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808001)), 0x3F81);  // above the tie
  EXPECT_EQ(float_to_bf16(from_bits(0x3F807FFF)), 0x3F80);  // below the tie
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(float_to_bf16(from_bits(0x00000001)), 0x0000);   // tiny subnormal
  EXPECT_EQ(float_to_bf16(from_bits(0x00018000)), 0x0002);   // subnormal tie -> even
  // NaN stays NaN, including payloads only in the low 16 bits, and keeps its sign.
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu}) {
    const uint16_t b = float_to_bf16(from_bits(nan));
    EXPECT_TRUE(std::isnan(bf16_to_float(b))) << std::hex << nan;
    EXPECT_EQ(b >> 15, nan >> 31);
  }
  EXPECT_EQ(bits(bf16_to_float(0x3F80)), 0x3F800000u);
  // Every non-NaN bf16 survives bf16 -> float -> bf16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_float(uint16_t(h));
    if (std::isnan(f)) EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
    else EXPECT_EQ(float_to_bf16(f), h) << std::hex << h;
  }
}

TEST(Float16, F16EdgeCases) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16(65519.996f), 0x7BFF);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7C00);  // tie with the next (inf) -> inf
  EXPECT_EQ(float_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(float_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(float_to_f16(0x1p-14f), 0x0400);            // smallest normal
  EXPECT_EQ(float_to_f16(0x1p-24f), 0x0001);            // smallest subnormal
  EXPECT_EQ(float_to_f16(0x1p-25f), 0x0000);            // tie with zero -> even (zero)
  EXPECT_EQ(float_to_f16(0x1.000002p-25f), 0x0001);     // just above the tie
  EXPECT_EQ(float_to_f16(-0x1.8p-24f), 0x8002);         // 1.5 ulp: tie -> even (2)
  EXPECT_EQ(float_to_f16(0x1.4p-24f), 0x0001);          // 1.25 ulp
  EXPECT_EQ(float_to_f16(1023.0f * 0x1p-24f), 0x03FF);  // largest subnormal
  EXPECT_EQ(float_to_f16(1023.5f * 0x1p-24f), 0x0400);  // tie -> even, carries into the exponent
  EXPECT_EQ(float_to_f16(from_bits(0x3F801000)), 0x3C00);  // normal tie -> even
  EXPECT_EQ(float_to_f16(from_bits(0x3F803000)), 0x3C02);  // normal tie -> even (up)
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u}) {
    const uint16_t h = float_to_f16(from_bits(nan));
    EXPECT_TRUE(std::isnan(f16_to_float(h))) << std::hex << nan;
    EXPECT_EQ(h >> 15, nan >> 31);
  }
  EXPECT_EQ(f16_to_float(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_float(0x83FF), -1023.0f * 0x1p-24f);
  EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(0x7C00)));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_float(uint16_t(h));
    if (std::isnan(f)) EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
    else EXPECT_EQ(float_to_f16(f), h) << std::hex << h;
  }
}

#ifdef __FLT16_MAX__
// Against the compiler's own float -> _Float16 conversion (round to nearest even).
TEST(Float16, F16MatchesCompilerConversion) {
  for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += 65521) {
    const float f = from_bits(uint32_t(b));
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(float_to_f16(f), hb) << std::hex << b;
    ASSERT_EQ(bits(f16_to_float(hb)), bits(static_cast<float>(h))) << std::hex << b;
  }
}
#endif

// ---------------------------------------------------------------- conversions

TEST_F(SafetensorsTest, IntegerReadsAreCheckedAndFloatsAreNotReadAsIntegers) {
  SafetensorsWriter w;
  w.add("big", Tensor<int64_t>({1}, int64_t(1) << 40));
  w.add("f", Tensor<float>({1}, 1.5f));
  const std::string path = file("conv.safetensors");
  w.write(path);
  auto st = SafetensorsFile::open(path);
  std::string msg = error_of([&] { st->get<int32_t>("big"); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'big'"));
  msg = error_of([&] { st->get<int64_t>("f"); });
  EXPECT_THAT(msg, HasSubstr("'f'"));
  EXPECT_THAT(msg, HasSubstr("F32"));
  msg = error_of([&] { st->view("nope"); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'nope'"));
}

// ---------------------------------------------------------------- malformations

TEST_F(SafetensorsTest, TruncatedFile) {
  const std::string path = file("short.safetensors");
  std::ofstream(path, std::ios::binary) << "abcde";
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("5 bytes"));
}

TEST_F(SafetensorsTest, MissingFile) {
  const std::string path = file("absent.safetensors");
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(path); }), HasSubstr(path));
}

TEST_F(SafetensorsTest, HeaderLengthPastEndOfFile) {
  const std::string path = write_raw("hlen.safetensors", "{}", 0, 1000);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("header length 1000"));
}

TEST_F(SafetensorsTest, AbsurdHeaderLength) {
  const std::string path = write_raw("absurd.safetensors", "{}", 0, uint64_t(1) << 60);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("absurd"));
}

TEST_F(SafetensorsTest, BadJson) {
  const std::string path = write_raw("json.safetensors", "{\"a\": {\"dtype\":\n", 0);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("not valid JSON"));
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  const std::string path = write_raw("array.safetensors", "[1, 2]", 0);
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(path); }), HasSubstr(path));
}

TEST_F(SafetensorsTest, EntryNotAnObject) {
  const std::string path = write_raw("entry.safetensors", R"({"w": [1, 2]})", 0);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'w'"));
}

TEST_F(SafetensorsTest, DataOffsetsPastEndOfData) {
  const std::string path = write_raw(
      "range.safetensors", R"({"layers.0.w1.weight": {"dtype": "F32", "shape": [25], "data_offsets": [0, 100]}})", 64);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path + ": tensor 'layers.0.w1.weight': data_offsets [0, 100] past end of data section (64 bytes)"));
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  const std::string path = write_raw("overlap.safetensors",
                                     R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                     R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                     12);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'a'"));
  EXPECT_THAT(msg, HasSubstr("'b'"));
  EXPECT_THAT(msg, HasSubstr("overlaps"));
}

TEST_F(SafetensorsTest, AdjacentAndEmptyTensorsDoNotOverlap) {
  const std::string path = write_raw("adjacent.safetensors",
                                     R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                     R"( "e": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},)"
                                     R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                                     12);
  EXPECT_NO_THROW(SafetensorsFile::open(path));
}

TEST_F(SafetensorsTest, BeginAfterEnd) {
  const std::string path =
      write_raw("order.safetensors", R"({"t": {"dtype": "U8", "shape": [0], "data_offsets": [8, 4]}})", 16);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path + ": tensor 't'"));
  EXPECT_THAT(msg, HasSubstr("begin > end"));
}

TEST_F(SafetensorsTest, BadDataOffsets) {
  const std::string path = write_raw("offs.safetensors", R"({"t": {"dtype": "U8", "shape": [4], "data_offsets": [0]}})", 4);
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(path); }), HasSubstr(path + ": tensor 't': data_offsets"));
}

TEST_F(SafetensorsTest, SizeDoesNotMatchDtypeTimesShape) {
  const std::string path = write_raw(
      "size.safetensors", R"({"x_pad_token": {"dtype": "BF16", "shape": [1, 3], "data_offsets": [0, 8]}})", 8);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path + ": tensor 'x_pad_token'"));
  EXPECT_THAT(msg, HasSubstr("needs 6"));
}

TEST_F(SafetensorsTest, UnknownDtype) {
  const std::string path = write_raw("dtype.safetensors", R"({"t": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", 1);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path + ": tensor 't'"));
  EXPECT_THAT(msg, HasSubstr("F8_E4M3"));
}

TEST_F(SafetensorsTest, NegativeOrNonIntegerShape) {
  for (const char* shape : {"[-1]", "[1.5]", "\"4\"", "[[2]]"}) {
    const std::string path = write_raw("shape.safetensors",
                                       std::string(R"({"t": {"dtype": "U8", "shape": )") + shape +
                                           R"(, "data_offsets": [0, 0]}})",
                                       0);
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });
    EXPECT_THAT(msg, HasSubstr(path + ": tensor 't'")) << shape;
    EXPECT_THAT(msg, HasSubstr("shape")) << shape;
  }
}

TEST_F(SafetensorsTest, DuplicateTensorNames) {
  const std::string path = write_raw("dup.safetensors",
                                     R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                                     R"( "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                                     2);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'w'"));
  EXPECT_THAT(msg, HasSubstr("more than once"));
}

TEST_F(SafetensorsTest, MetadataMustBeStrings) {
  const std::string path = write_raw("meta.safetensors", R"({"__metadata__": {"seed": 3}})", 0);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'seed'"));
}

// ---------------------------------------------------------------- aliases

// The tensors of a small file, stored in full ("a", "b", and their copies "x", "y")
// or deduplicated ("x", "y" listed in zimage_aliases).
void add_alias_test_tensors(SafetensorsWriter& w, bool dedupe) {
  const Tensor<float> a({2, 3}, std::vector<float>{1.0f, -2.5f, 0.1f, 3e38f, -0.0f, 1e-40f});
  const Tensor<int64_t> b({2}, std::vector<int64_t>{-7, 1LL << 40});
  w.add("a", a);
  w.add("b", b);
  w.add("c", a, DType::BF16);  // the same values in another dtype: not a duplicate
  w.set_metadata("kind", "test");
  if (dedupe) {
    w.set_metadata(SafetensorsFile::kAliasesKey, R"({"x": "a", "y": "b"})");
  } else {
    w.add("x", a);
    w.add("y", b);
  }
}

TEST_F(SafetensorsTest, AliasesReadAsTheStoredTensorThroughEveryLookup) {
  SafetensorsWriter full, deduped;
  add_alias_test_tensors(full, false);
  add_alias_test_tensors(deduped, true);
  full.write(file("full.safetensors"));
  deduped.write(file("dedup.safetensors"));
  EXPECT_LT(fs::file_size(file("dedup.safetensors")), fs::file_size(file("full.safetensors")));
  const auto f = SafetensorsFile::open(file("full.safetensors"));
  std::ifstream in(file("dedup.safetensors"), std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& d : {SafetensorsFile::open(file("dedup.safetensors")), SafetensorsFile::from_bytes("mem", bytes)}) {
    EXPECT_EQ(d->names(), f->names());
    EXPECT_EQ(d->names(), (std::vector<std::string>{"a", "b", "c", "x", "y"}));
    EXPECT_EQ(d->aliases(), (std::map<std::string, std::string>{{"x", "a"}, {"y", "b"}}));
    EXPECT_TRUE(f->aliases().empty());
    // metadata() is the file's less the consumed alias key, so a copy made from
    // metadata() and names() is a valid file without aliases.
    EXPECT_EQ(d->metadata(), f->metadata());
    EXPECT_EQ(d->metadata().count(SafetensorsFile::kAliasesKey), 0u);
    for (const std::string& n : f->names()) {
      ASSERT_TRUE(d->contains(n)) << n;
      const TensorView& got = d->view(n);
      const TensorView& want = f->view(n);
      EXPECT_EQ(got.name, n);
      EXPECT_EQ(got.dtype, want.dtype) << n;
      EXPECT_EQ(got.shape, want.shape) << n;
      ASSERT_EQ(got.nbytes, want.nbytes) << n;
      EXPECT_EQ(std::memcmp(got.data, want.data, got.nbytes), 0) << n;
      EXPECT_EQ(d->get<double>(n).data, f->get<double>(n).data) << n;
    }
    EXPECT_EQ(d->view("x").data, d->view("a").data);  // stored once
    EXPECT_EQ(d->get<int64_t>("y").data, (std::vector<int64_t>{-7, 1LL << 40}));
    EXPECT_FALSE(d->contains("z"));
    // A missing name still names the file; an alias's conversion error names the alias.
    EXPECT_THAT(error_of([&] { d->view("z"); }), HasSubstr("no tensor 'z'"));
    EXPECT_THAT(error_of([&] { d->get<int32_t>("x"); }), HasSubstr("tensor 'x': dtype F32 cannot be read as an integer"));
  }
  // A copy made from metadata() and names() (as tests do to perturb a golden) opens
  // and equals the undeduplicated file.
  const auto d = SafetensorsFile::open(file("dedup.safetensors"));
  SafetensorsWriter copy;
  for (const auto& [k, v] : d->metadata()) copy.set_metadata(k, v);
  for (const std::string& n : d->names()) {
    const TensorView& v = d->view(n);
    copy.add_raw(n, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes));
  }
  copy.write(file("copy.safetensors"));
  EXPECT_EQ(SafetensorsFile::open(file("copy.safetensors"))->names(), f->names());
}

// Every kind of bad alias map is a one-line error naming the file, the key and the alias.
TEST_F(SafetensorsTest, BadAliasesAreOneLineErrorsNamingTheAlias) {
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"{\"x\": ", {"'zimage_aliases' is not valid JSON"}},
      {"[\"x\", \"a\"]", {"'zimage_aliases' is not a JSON object"}},
      {"\"x\"", {"'zimage_aliases' is not a JSON object"}},
      {R"({"x": 3})", {"alias 'x' does not map to a string"}},
      {R"({"x": ["a"]})", {"alias 'x' does not map to a string"}},
      {R"({"x": "missing"})", {"alias 'x' points to 'missing', which is not a stored tensor"}},
      {R"({"a": "b"})", {"alias 'a' is also a stored tensor"}},
      {R"({"x": "y", "y": "a"})", {"alias 'x' points to alias 'y'", "must name a stored tensor"}},
      {R"({"x": "x"})", {"alias 'x' points to alias 'x'"}},
      {R"({"x": "a", "x": "b"})", {"lists alias 'x' more than once"}},
      {R"({"": "a"})", {"alias '' is not a usable tensor name"}},
      {R"({"__metadata__": "a"})", {"alias '__metadata__' is not a usable tensor name"}},
      {R"({"x\ny": "gone\n"})", {"alias 'x y' points to 'gone ', which is not a stored tensor"}},
  };
  for (const auto& [aliases, wants] : cases) {
    SafetensorsWriter w;
    w.add("a", Tensor<float>({2}, std::vector<float>{1.0f, 2.0f}));
    w.add("b", Tensor<float>({2}, std::vector<float>{1.0f, 2.0f}));
    w.set_metadata(SafetensorsFile::kAliasesKey, aliases);
    const std::string path = file("bad_alias.safetensors");
    w.write(path);
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });  // checks: one line
    EXPECT_THAT(msg, HasSubstr(path + ": __metadata__ 'zimage_aliases'")) << aliases;
    for (const std::string& want : wants) EXPECT_THAT(msg, HasSubstr(want)) << aliases;
  }
}

// ---------------------------------------------------------------- writer failures

TEST_F(SafetensorsTest, WriterLeavesNothingWhenDirectoryIsMissing) {
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}, 1.0f));
  const std::string path = file("no/such/dir/out.safetensors");
  EXPECT_THAT(error_of([&] { w.write(path); }), HasSubstr(path));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SafetensorsTest, WriterRemovesTmpWhenRenameFails) {
  // The target is a non-empty directory: the tmp file is written, the rename fails.
  const std::string path = file("target");
  fs::create_directories(fs::path(path) / "child");
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}, 1.0f));
  EXPECT_THAT(error_of([&] { w.write(path); }), HasSubstr(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_directory(fs::path(path) / "child"));
}

TEST_F(SafetensorsTest, WriterRejectsBadEntries) {
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}, 1.0f));
  EXPECT_THAT(error_of([&] { w.add("a", Tensor<float>({1}, 1.0f)); }), HasSubstr("'a'"));
  EXPECT_THAT(error_of([&] { w.add_raw("r", DType::F32, {2}, {1, 2, 3}); }), HasSubstr("'r'"));
  EXPECT_THAT(error_of([&] { w.add("i", Tensor<float>({1}, 1.0f), DType::I32); }), HasSubstr("'i'"));
  EXPECT_THAT(error_of([&] { w.add("__metadata__", Tensor<float>({1}, 1.0f)); }), HasSubstr("__metadata__"));
  EXPECT_TRUE(w.contains("a"));
  EXPECT_FALSE(w.contains("r"));
}

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(dtype_from_name("BF16", "ctx"), DType::BF16);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_TRUE(dtype_is_float(DType::F16));
  EXPECT_FALSE(dtype_is_float(DType::I32));
  EXPECT_THAT(error_of([] { dtype_from_name("Q4", "somewhere"); }), HasSubstr("somewhere"));
  EXPECT_THAT(error_of([] { dtype_from_name("Q4", "somewhere"); }), Not(HasSubstr("\n")));
}


// ---------------------------------------------------------------- found with fuzz/fuzz_safetensors
// (the input as given to the fuzz target: SafetensorsFile::from_bytes)

TEST_F(SafetensorsTest, FromBytesRunsTheSameChecksAsOpen) {
  SafetensorsWriter w;
  w.set_metadata("k", "v");
  w.add("a", Tensor<float>({2}, std::vector<float>{1.5f, -2.0f}), DType::BF16);
  w.add("i", Tensor<int32_t>({1}, std::vector<int32_t>{-3}));
  const std::string path = file("bytes.safetensors");
  w.write(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  auto mem = SafetensorsFile::from_bytes("in-memory", bytes);
  auto mapped = SafetensorsFile::open(path);
  EXPECT_EQ(mem->path(), "in-memory");
  EXPECT_EQ(mem->names(), mapped->names());
  EXPECT_EQ(mem->metadata(), mapped->metadata());
  EXPECT_EQ(mem->get<double>("a").data, mapped->get<double>("a").data);
  EXPECT_EQ(mem->get<int64_t>("i").data, std::vector<int64_t>{-3});

  bytes.resize(bytes.size() - 1);  // truncated data section
  std::string msg = error_of([&] { SafetensorsFile::from_bytes("in-memory", bytes); });
  EXPECT_THAT(msg, HasSubstr("in-memory: tensor"));
  EXPECT_THAT(msg, HasSubstr("past end of data section"));
  EXPECT_THAT(error_of([] { SafetensorsFile::from_bytes("tiny", {1, 2, 3}); }), HasSubstr("tiny: file is 3 bytes"));
  EXPECT_THAT(error_of([] { SafetensorsFile::from_bytes("none", {}); }), HasSubstr("none: file is 0 bytes"));
}

// Names in the header are quoted into messages; a JSON "\n" in one must not
// break the one-line message (fuzz finding: dtype "F8\n4M3").
TEST_F(SafetensorsTest, NamesWithNewlinesStillGiveOneLineMessages) {
  const char* headers[] = {
      R"({"t": {"dtype": "F8\n4M3", "shape": [1], "data_offsets": [0, 1]}})",
      R"({"a\nb": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1]}})",
      R"({"a\r\nb": [1]})",
      R"({"__metadata__": {"k\ney": 3}})",
  };
  for (const char* header : headers) {
    const std::string path = write_raw("newline.safetensors", header, 1);
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });  // checks: one line
    EXPECT_THAT(msg, HasSubstr(path)) << header;
  }
}

// A deeply nested shape used to be dumped whole into the message: json::dump()
// recursed a million frames deep and overflowed the stack.
TEST_F(SafetensorsTest, DeeplyNestedShapeIsAnErrorNotAStackOverflow) {
  const size_t depth = 1'000'000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  const std::pair<std::string, std::string> cases[] = {
      {"shape", R"({"t": {"dtype": "U8", "shape": )" + nested + R"(, "data_offsets": [0, 1]}})"},
      {"data_offsets", R"({"t": {"dtype": "U8", "shape": [1], "data_offsets": )" + nested + "}}"}};
  for (const auto& [key, header] : cases) {
    const std::string path = write_raw("deep.safetensors", header, 1);
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });
    EXPECT_THAT(msg, HasSubstr(path + ": tensor 't': " + key + " [[...]] is not")) << key;
  }
}

// A zero-element tensor whose leading dimensions multiply past int64 was
// accepted, and to_tensor's shape_numel() then overflowed (signed: UB).
TEST_F(SafetensorsTest, ShapeWhoseDimensionsOverflowInt64IsRefused) {
  std::string path = write_raw(
      "overflow.safetensors", R"({"t": {"dtype": "U8", "shape": [2, 4611686018427387904, 0], "data_offsets": [0, 0]}})", 0);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_THAT(msg, HasSubstr(path + ": tensor 't': shape [2, 4611686018427387904, 0]"));
  EXPECT_THAT(msg, HasSubstr("overflows int64"));
  // A leading zero keeps every partial product at zero: a valid empty tensor.
  path = write_raw("zero.safetensors",
                   R"({"t": {"dtype": "F64", "shape": [0, 9223372036854775807, 9223372036854775807], "data_offsets": [0, 0]}})", 0);
  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->get<double>("t").numel(), 0);
}

}  // namespace
}  // namespace zimage
