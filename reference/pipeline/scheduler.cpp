#include "pipeline/scheduler.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/json_fields.h"
#include "numerics/mutation.h"

namespace zimage {

using json = nlohmann::json;

namespace {

// float32(x) for a double, round to nearest even (numpy astype / NEP 50 weak scalars).
inline float f32(double x) { return static_cast<float>(x); }

// numpy.linspace(start, stop, num) in float64: y[i] = i * step + start with
// step = (stop - start) / (num - 1) (two roundings), y[num - 1] = stop; num 1 gives [start].
std::vector<double> numpy_linspace(double start, double stop, int num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = 0.0 * (stop - start) + start;
    return y;
  }
  const double step = (stop - start) / double(num - 1);
  for (int i = 0; i < num; ++i) {
    const double t = double(i) * step;  // -ffp-contract=off: two roundings, as numpy's y *= step; y += start
    y[size_t(i)] = t + start;
  }
  y[size_t(num - 1)] = stop;
  return y;
}

// The constructor's sigmas[0] and sigmas[-1] (sigma_max, sigma_min): torch float32 on
// timesteps N..1: sigma = t / N, shifted when use_dynamic_shifting is false.
float init_sigma(const FlowMatchSchedulerConfig& c, int t) {
  float s = f32(double(t)) / f32(double(c.num_train_timesteps));
  if (!c.use_dynamic_shifting) {
    const float num = f32(c.shift) * s;
    const float den = 1.0f + f32(c.shift - 1.0) * s;
    s = num / den;
  }
  return s;
}

}  // namespace

void FlowMatchSchedulerConfig::validate(const std::string& source) const {
  ZIMAGE_CHECK(num_train_timesteps > 0,
               source + ": num_train_timesteps must be positive, got " + std::to_string(num_train_timesteps));
  ZIMAGE_CHECK(std::isfinite(shift) && shift > 0,
               source + ": shift must be a positive finite number, got " + json_number_text(shift));
  ZIMAGE_CHECK(std::isfinite(base_shift), source + ": base_shift must be finite, got " + json_number_text(base_shift));
  ZIMAGE_CHECK(std::isfinite(max_shift), source + ": max_shift must be finite, got " + json_number_text(max_shift));
  ZIMAGE_CHECK(max_image_seq_len != base_image_seq_len,
               source + ": max_image_seq_len equals base_image_seq_len (" + std::to_string(base_image_seq_len) +
                   "): calculate_shift would divide by zero");
  ZIMAGE_CHECK(time_shift_type == "exponential" || time_shift_type == "linear",
               source + ": time_shift_type must be 'exponential' or 'linear', got '" + time_shift_type + "'");
}

FlowMatchSchedulerConfig scheduler_config_from_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  ZIMAGE_CHECK(j.is_object(), source + ": scheduler config must be a JSON object, got " + std::string(j.type_name()));
  FlowMatchSchedulerConfig c;
  // Keys FlowMatchEulerDiscreteScheduler accepts but this reference does not implement:
  // refused unless they hold their no-op default.
  const std::set<std::string> unsupported_flags = {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                                   "invert_sigmas", "stochastic_sampling"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "_class_name") {
      ZIMAGE_CHECK(
          v.is_string() && v.get<std::string>() == "FlowMatchEulerDiscreteScheduler",
          source + ": key '_class_name' is " + json_brief(v) + ", only FlowMatchEulerDiscreteScheduler is supported");
    } else if (!key.empty() && key[0] == '_') {
      continue;  // _diffusers_version and other bookkeeping keys
    } else if (key == "num_train_timesteps") {
      c.num_train_timesteps = json_int(v, key, source);
    } else if (key == "shift") {
      c.shift = json_number(v, key, source);
    } else if (key == "use_dynamic_shifting") {
      c.use_dynamic_shifting = json_bool(v, key, source);
    } else if (key == "base_shift" || key == "max_shift") {
      ZIMAGE_CHECK(!v.is_null(), source + ": key '" + key + "' is null: ZImagePipeline's calculate_shift needs a number");
      (key == "base_shift" ? c.base_shift : c.max_shift) = json_number(v, key, source);
    } else if (key == "base_image_seq_len") {
      c.base_image_seq_len = json_int(v, key, source);
    } else if (key == "max_image_seq_len") {
      c.max_image_seq_len = json_int(v, key, source);
    } else if (key == "time_shift_type") {
      ZIMAGE_CHECK(v.is_string(), source + ": key 'time_shift_type' must be a string, got " + json_brief(v));
      c.time_shift_type = v.get<std::string>();
    } else if (key == "shift_terminal") {
      // diffusers applies it when truthy: null and 0 are no-ops.
      const bool noop = v.is_null() || (v.is_number() && v.get<double>() == 0.0);
      ZIMAGE_CHECK(noop, source + ": key 'shift_terminal' = " + json_brief(v) +
                             " is not supported by this reference (only null)");
    } else if (unsupported_flags.count(key)) {
      ZIMAGE_CHECK(v.is_boolean(), source + ": key '" + key + "' must be true or false, got " + json_brief(v));
      ZIMAGE_CHECK(!v.get<bool>(), source + ": key '" + key + "' = true is not supported by this reference");
    } else {
      throw Error(source + ": unknown scheduler config key '" + key + "'");
    }
  }
  c.validate(source);
  return c;
}

FlowMatchSchedulerConfig load_scheduler_config(const std::string& json_path) {
  std::ifstream f(json_path, std::ios::binary);
  ZIMAGE_CHECK(f.good(), json_path + ": cannot open scheduler config");
  std::ostringstream ss;
  ss << f.rdbuf();
  return scheduler_config_from_json_text(ss.str(), json_path);
}

double calculate_shift(int64_t image_seq_len, const FlowMatchSchedulerConfig& c) {
  const double m = (c.max_shift - c.base_shift) / double(c.max_image_seq_len - c.base_image_seq_len);
  const double b = c.base_shift - m * double(c.base_image_seq_len);
  return double(image_seq_len) * m + b;
}

int64_t zimage_image_seq_len(int64_t latent_h, int64_t latent_w) { return (latent_h / 2) * (latent_w / 2); }

std::vector<double> default_zimage_sigmas(int n, TorchCpuCapability cap) {
  ZIMAGE_CHECK(n > 0, "num_inference_steps must be positive, got " + std::to_string(n));
  if (n == 1) return {1.0};  // torch.linspace with steps == 1 fills with start
  const float start = 1.0f, end = f32(1.0 / double(n));
  const float step = (end - start) / float(n - 1);
  const int halfway = n / 2;
  std::vector<double> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    float v;
    if (i < halfway) {
      v = cap == TorchCpuCapability::Avx2 ? std::fma(step, float(i), start) : start + step * float(i);
    } else {
      const float k = float(n - i - 1);
      v = cap == TorchCpuCapability::Avx2 ? std::fma(-step, k, end) : end - step * k;
    }
    out[size_t(i)] = double(v);
  }
  return out;
}

Schedule flow_match_set_timesteps(const FlowMatchSchedulerConfig& c, int n, std::optional<std::vector<double>> sigmas,
                                  std::optional<double> mu, std::optional<std::vector<double>> timesteps) {
  c.validate("scheduler config");
  ZIMAGE_CHECK(!c.use_dynamic_shifting || mu.has_value(),
               "set_timesteps: mu must be passed when use_dynamic_shifting is true");
  ZIMAGE_CHECK(!mu || std::isfinite(*mu), "set_timesteps: mu must be finite, got " + json_number_text(mu.value_or(0)));
  ZIMAGE_CHECK(n >= 0, "set_timesteps: num_inference_steps must be positive, got " + std::to_string(n));
  if (sigmas && timesteps)
    ZIMAGE_CHECK(sigmas->size() == timesteps->size(),
                 "set_timesteps: sigmas (" + std::to_string(sigmas->size()) + ") and timesteps (" +
                     std::to_string(timesteps->size()) + ") must have the same length");
  if (n > 0) {
    ZIMAGE_CHECK(!sigmas || int64_t(sigmas->size()) == n,
                 "set_timesteps: " + std::to_string(sigmas ? sigmas->size() : 0) +
                     " sigmas for num_inference_steps " + std::to_string(n));
    ZIMAGE_CHECK(!timesteps || int64_t(timesteps->size()) == n,
                 "set_timesteps: " + std::to_string(timesteps ? timesteps->size() : 0) +
                     " timesteps for num_inference_steps " + std::to_string(n));
  } else {
    ZIMAGE_CHECK(sigmas || timesteps, "set_timesteps: num_inference_steps must be positive, got 0 and no sigmas or timesteps");
    n = int(sigmas ? sigmas->size() : timesteps->size());
  }
  ZIMAGE_CHECK(n > 0, "set_timesteps: empty sigmas / timesteps");
  auto check_finite = [](const std::optional<std::vector<double>>& list, const char* what) {
    if (!list) return;
    for (size_t i = 0; i < list->size(); ++i)
      ZIMAGE_CHECK(std::isfinite((*list)[i]),
                   std::string("set_timesteps: ") + what + "[" + std::to_string(i) + "] is not finite");
  };
  check_finite(sigmas, "sigmas");
  check_finite(timesteps, "timesteps");

  const float N32 = f32(double(c.num_train_timesteps));
  std::vector<float> s32(static_cast<size_t>(n));
  if (sigmas || timesteps) {
    // float32 path (numpy float32 arrays; Python scalars are rounded to float32 first).
    if (sigmas) {
      for (int i = 0; i < n; ++i) s32[size_t(i)] = f32((*sigmas)[size_t(i)]);
    } else {
      for (int i = 0; i < n; ++i) s32[size_t(i)] = f32((*timesteps)[size_t(i)]) / N32;
    }
    for (float& s : s32) {
      if (c.use_dynamic_shifting) {
        const float x = 1.0f / s - 1.0f;  // (1 / t - 1) ** 1.0 == itself
        if (c.time_shift_type == "exponential") {
          const float e = f32(std::exp(*mu));
          s = e / (e + x);
        } else {
          const float m = f32(*mu);
          s = m / (m + x);
        }
      } else {
        const float num_ = f32(c.shift) * s;
        const float den = 1.0f + f32(c.shift - 1.0) * s;
        s = num_ / den;
      }
    }
  } else {
    // float64 path: numpy linspace over the constructor's sigma range, shift in float64.
    const double sigma_max = double(init_sigma(c, c.num_train_timesteps));
    const double sigma_min = double(init_sigma(c, 1));
    const double N = double(c.num_train_timesteps);
    std::vector<double> t = numpy_linspace(sigma_max * N, sigma_min * N, n);
    for (int i = 0; i < n; ++i) {
      double s = t[size_t(i)] / N;
      if (c.use_dynamic_shifting) {
        const double x = 1.0 / s - 1.0;
        if (c.time_shift_type == "exponential") {
          const double e = std::exp(*mu);
          s = e / (e + x);
        } else {
          s = *mu / (*mu + x);
        }
      } else {
        s = c.shift * s / (1.0 + (c.shift - 1.0) * s);
      }
      s32[size_t(i)] = f32(s);
    }
  }
  Schedule out;
  out.sigmas = s32;
  out.sigmas.push_back(0.0f);
  out.timesteps.resize(size_t(n));
  for (int i = 0; i < n; ++i) out.timesteps[size_t(i)] = s32[size_t(i)] * N32;
  return out;
}

Schedule zimage_pipeline_schedule(const FlowMatchSchedulerConfig& c, int n, int64_t image_seq_len,
                                  std::optional<std::vector<double>> custom_sigmas, TorchCpuCapability cap) {
  std::vector<double> sig = custom_sigmas ? *custom_sigmas : default_zimage_sigmas(n, cap);
  return flow_match_set_timesteps(c, 0, std::move(sig), calculate_shift(image_seq_len, c));
}

void flow_match_step(const Schedule& s, int i, const float* model_output, float* sample, int64_t n) {
  ZIMAGE_CHECK(i >= 0 && i < s.steps(), "flow_match_step: step index " + std::to_string(i) + " outside a schedule of " +
                                            std::to_string(s.steps()) + " steps");
  ZIMAGE_CHECK(s.sigmas.size() == s.timesteps.size() + 1, "flow_match_step: schedule has " +
                                                              std::to_string(s.sigmas.size()) + " sigmas for " +
                                                              std::to_string(s.timesteps.size()) + " timesteps");
  size_t cur = size_t(i), next = size_t(i) + 1;
  if (mutated(Mutation::SigmasTimestepsOutOfStep)) {
    const size_t last = s.sigmas.size() - 1;
    cur = std::min(cur + 1, last);
    next = std::min(next + 1, last);
  }
  const float dt = s.sigmas[next] - s.sigmas[cur];
  for (int64_t k = 0; k < n; ++k) {
    const float d = dt * model_output[k];
    sample[k] = sample[k] + d;
  }
}

float zimage_model_timestep(const Schedule& s, int i) {
  ZIMAGE_CHECK(i >= 0 && i < s.steps(), "zimage_model_timestep: step index " + std::to_string(i) +
                                            " outside a schedule of " + std::to_string(s.steps()) + " steps");
  const float d = 1000.0f - s.timesteps[size_t(i)];
  return d / 1000.0f;
}

}  // namespace zimage
