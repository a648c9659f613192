// The VAE's module table: every diffusers module path of AutoencoderKL this
// suite checks ("decoder.up_blocks.1.resnets.0", "decoder.mid_block.attentions.0.to_q",
// "post_quant_conv", ...) and the whole-model rows ("decode", "tiled_decode",
// "encode.mean", "encode.logvar", "unscale"), with its op chain (the error
// budget, numerics/tolerance.h; derivations in docs/vae.md and
// docs/tolerances.md) and its runner (teacher forced on the input a golden
// recorded for it). One row per module in vae/module_table.cpp.
//
// K per op, derived from the layer:
//   conv:        K = C_in * kh * kw + 1 (the bias is one more term of the sum)
//   group_norm:  K = 2 * (C / G) * spatial (mean and variance over the group, as layer_norm)
//                + rsqrt, 3 roundings (subtract, scale, affine)
//   attention:   group_norm(C/G * L), linear(K = C) for q/k/v, q k^T (K = C),
//                softmax (K = L, exp), p v (K = L), linear(K = C), residual add
//   resnet:      group_norm, silu, conv(C_in*9), group_norm, silu, conv(C_out*9),
//                [conv_shortcut(C_in)], residual add
// Whole encoder / decoder chains walk the blocks with the spatial size of
// each stage (the decoder doubles it per upsampler, the encoder maps
// H -> (H - 2) / 2 + 1 per downsampler).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "numerics/tolerance.h"
#include "vae/config.h"
#include "vae/vae_golden.h"

namespace zimage {

// The op chain of the module (or row) at `path` on an input of shape `in`
// ([B, C, H, W]; the attention's group_norm [B, C, L]; its Linears [B, L, C]).
// Throws for a path the table has no chain for.
std::vector<numerics::Op> vae_module_ops(const std::string& path, const VaeConfig& cfg, const Shape& in);
numerics::Budget vae_module_budget(numerics::Tier tier, const std::string& path, const VaeConfig& cfg, const Shape& in);

// Runs the module (or row) at `path` on its golden input. nullopt when the
// golden has no input for it; throws for a path the table has no runner for.
template <class T>
std::optional<Tensor<T>> run_vae_module(const VaeGolden& g, const std::string& path);

// The T2 budget of a row: vae_module_budget over the shape of its input.
numerics::Budget vae_row_budget(const VaeGolden& g, const std::string& path);

}  // namespace zimage
