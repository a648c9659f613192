#include "pipeline/torch_generator.h"

#include <cmath>
#include <cstring>
#include <string>

namespace zimage {

namespace {

constexpr double kPi = 3.14159265358979323846;  // c10::pi<double>

// at::uniform_real_distribution<float>(0, 1): 24 random bits times 2^-24 (exact).
inline float uniform_float(TorchCpuGenerator& g) { return float(g.random() & 0xFFFFFFu) * (1.0f / 16777216.0f); }

// normal_fill_16 (scalar): Box-Muller over the pairs (j, j + 8) of 16 uniforms, in place.
// Every step rounds as torch's float code does: 1 - u and -2 * log are exact;
// theta = 2.0f * pi<double> * u2 is computed in double, then rounded to float.
void normal_fill_16_scalar(float* d) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = float(2.0 * kPi * double(u2));
    d[j] = radius * std::cos(theta);      // * std (1) + mean (0): exact
    d[j + 8] = radius * std::sin(theta);
  }
}

// ---- avx_mathfun.h (torch's AVX2 normal_fill), lane by lane in float. -------------------
inline uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// log256_ps for x > 0 (u1 in (0, 1]).
float avx_log(float x) {
  const float min_norm = float_of(0x00800000u);
  if (x < min_norm) x = min_norm;
  int32_t imm0 = int32_t(bits_of(x) >> 23);
  x = float_of((bits_of(x) & ~0x7f800000u) | bits_of(0.5f));
  imm0 -= 0x7f;
  float e = float(imm0);
  e = e + 1.0f;
  const bool mask = x < float(0.707106781186547524);
  const float tmp = mask ? x : 0.0f;
  x = x - 1.0f;
  e = e - (mask ? 1.0f : 0.0f);
  x = x + tmp;
  const float z = x * x;
  // GCC contracts each multiply whose only use is an add into an FMA (torch builds
  // this kernel with -mfma and the default -ffp-contract=fast): the Horner steps and
  // y * z + e * q1 are fused; z * 0.5 and e * q2 are exact, so their fusing is moot.
  float y = float(7.0376836292E-2);
  y = std::fma(y, x, float(-1.1514610310E-1));
  y = std::fma(y, x, float(1.1676998740E-1));
  y = std::fma(y, x, float(-1.2420140846E-1));
  y = std::fma(y, x, float(1.4249322787E-1));
  y = std::fma(y, x, float(-1.6668057665E-1));
  y = std::fma(y, x, float(2.0000714765E-1));
  y = std::fma(y, x, float(-2.4999993993E-1));
  y = std::fma(y, x, float(3.3333331174E-1));
  y = y * x;
  y = std::fma(y, z, e * float(-2.12194440e-4));
  y = y - z * 0.5f;
  x = x + y;
  x = std::fma(e, 0.693359375f, x);
  return x;
}

// sincos256_ps for x >= 0 (theta = 2 pi u2).
void avx_sincos(float x, float* s, float* c) {
  uint32_t sign_sin = bits_of(x) & 0x80000000u;
  x = float_of(bits_of(x) & 0x7fffffffu);
  float y = x * float(1.27323954473516);
  int32_t imm2 = int32_t(y);  // cvttps: truncation
  imm2 = (imm2 + 1) & ~1;
  y = float(imm2);
  const int32_t imm4 = imm2;
  const uint32_t swap_sign_sin = uint32_t(imm2 & 4) << 29;
  const bool poly_mask = (imm2 & 2) == 0;
  x = std::fma(y, float(-0.78515625), x);  // fused, as in the log above
  x = std::fma(y, float(-2.4187564849853515625e-4), x);
  x = std::fma(y, float(-3.77489497744594108e-8), x);
  const uint32_t sign_cos = uint32_t(~(imm4 - 2) & 4) << 29;
  sign_sin ^= swap_sign_sin;
  const float z = x * x;
  float p = float(2.443315711809948E-005);
  p = std::fma(p, z, float(-1.388731625493765E-003));
  p = std::fma(p, z, float(4.166664568298827E-002));
  p = p * z;
  p = std::fma(p, z, -(z * 0.5f));
  p = p + 1.0f;
  float p2 = float(-1.9515295891E-4);
  p2 = std::fma(p2, z, float(8.3321608736E-3));
  p2 = std::fma(p2, z, float(-1.6666654611E-1));
  p2 = p2 * z;
  p2 = std::fma(p2, x, x);
  const float vs = poly_mask ? p2 : p;  // ysin1 + ysin2, one of them +0
  const float vc = poly_mask ? p : p2;
  *s = float_of(bits_of(vs) ^ sign_sin);
  *c = float_of(bits_of(vc) ^ sign_cos);
}

void normal_fill_16_avx2(float* d) {
  float u1[8], u2[8];
  for (int j = 0; j < 8; ++j) u1[j] = 1.0f - d[j], u2[j] = d[j + 8];
  const float two_pi = float(2.0 * kPi);
  for (int j = 0; j < 8; ++j) {
    const float radius = std::sqrt(-2.0f * avx_log(u1[j]));
    const float theta = two_pi * u2[j];
    float s, c;
    avx_sincos(theta, &s, &c);
    d[j] = radius * c;
    d[j + 8] = radius * s;
  }
}

}  // namespace

TorchCpuGenerator::TorchCpuGenerator(uint64_t seed)
    : engine_(uint32_t(seed & 0xFFFFFFFFu)) {}

uint32_t TorchCpuGenerator::random() { return uint32_t(engine_()); }

uint64_t TorchCpuGenerator::random64() {
  const uint64_t hi = random();
  const uint64_t lo = random();
  return (hi << 32) | lo;
}

double TorchCpuGenerator::normal_double() {
  if (next_double_normal_) {
    const double r = *next_double_normal_;
    next_double_normal_.reset();
    return r;
  }
  // uniform_real_distribution<double>(0, 1): 53 random bits times 2^-53 (exact).
  const double u1 = double(random64() & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  const double u2 = double(random64() & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * kPi * u1;
  next_double_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

void TorchCpuGenerator::randn(float* out, int64_t n, TorchCpuCapability cap) {
  ZIMAGE_CHECK(n >= 0, "TorchCpuGenerator::randn: negative element count " + std::to_string(n));
  if (n < 16) {
    for (int64_t i = 0; i < n; ++i) out[i] = float(normal_double());
    return;
  }
  auto fill16 = cap == TorchCpuCapability::Avx2 ? normal_fill_16_avx2 : normal_fill_16_scalar;
  for (int64_t i = 0; i < n; ++i) out[i] = uniform_float(*this);
  for (int64_t i = 0; i + 16 <= n; i += 16) fill16(out + i);
  if (n % 16 != 0) {
    float* tail = out + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform_float(*this);
    fill16(tail);
  }
}

Tensor<float> randn_latents(uint64_t seed, const Shape& shape, TorchCpuCapability cap) {
  for (int64_t d : shape) ZIMAGE_CHECK(d >= 0, "randn_latents: negative dimension in shape " + shape_str(shape));
  Tensor<float> t(shape);
  TorchCpuGenerator g(seed);
  g.randn(t.ptr(), t.numel(), cap);
  return t;
}

Tensor<float> randn_latents_per_item(const std::vector<uint64_t>& seeds, const Shape& shape, TorchCpuCapability cap) {
  ZIMAGE_CHECK(!shape.empty(), "randn_latents_per_item: empty shape");
  ZIMAGE_CHECK(int64_t(seeds.size()) == shape[0], "randn_latents_per_item: " + std::to_string(seeds.size()) +
                                                      " generators for a batch of " + std::to_string(shape[0]));
  if (seeds.size() == 1) return randn_latents(seeds[0], shape, cap);
  Tensor<float> t(shape);
  const int64_t per = shape[0] ? t.numel() / shape[0] : 0;
  for (size_t b = 0; b < seeds.size(); ++b) {
    TorchCpuGenerator g(seeds[b]);
    g.randn(t.ptr() + int64_t(b) * per, per, cap);
  }
  return t;
}

}  // namespace zimage
