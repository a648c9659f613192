// ComfyUI's single-file Z-Image transformer checkpoints, presented under
// diffusers' parameter names. This is the one place where the two layouts
// meet; everything else in the project sees diffusers' names only.
//
// Ref: diffusers/loaders/single_file_utils.py
//      convert_z_image_transformer_checkpoint_to_diffusers (commit 58eb52c)
// The same mapping, in the same order:
//   1. Each key goes through these substring replacements, in this order
//      (Python str.replace: every occurrence):
//        "final_layer."              -> "all_final_layer.2-1."
//        "x_embedder."               -> "all_x_embedder.2-1."
//        ".attention.out.bias"       -> ".attention.to_out.0.bias"
//        ".attention.k_norm.weight"  -> ".attention.norm_k.weight"
//        ".attention.q_norm.weight"  -> ".attention.norm_q.weight"
//        ".attention.out.weight"     -> ".attention.to_out.0.weight"
//        "model.diffusion_model."    -> ""
//      (diffusers hard-codes the "2-1" embedder key: patch 2, f_patch 1.)
//   2. "norm_final.weight", if present after renaming, is dropped (the final
//      LayerNorm has no affine parameters in diffusers).
//   3. Every key holding ".attention.qkv.weight" is a fused [3C, C] tensor,
//      torch.chunk(qkv, 3, dim=0) -> to_q, to_k, to_v ([C, C] each). Row
//      chunks of a row-major tensor are contiguous, so the split tensors are
//      views into the file (no copy).
// Detected, as diffusers' infer_diffusers_model_type does, by the key
// "model.diffusion_model.layers.0.adaLN_modulation.0.weight" or
// "layers.0.adaLN_modulation.0.weight".
#pragma once
#include <memory>
#include <string>

#include "io/param_source.h"

namespace zimage {

// Step 1 above: the diffusers name of a ComfyUI key (before the qkv split).
std::string comfy_rename(const std::string& key);

// Whether a safetensors file holds a Z-Image transformer under ComfyUI's /
// the original keys (the detection keys above), rather than diffusers' names.
bool is_comfy_zimage_file(const SafetensorsFile& f);

// The tensors of a ComfyUI single-file checkpoint under diffusers' names
// (steps 1-3). Errors name the file and the key: a renamed key that collides
// with another, a qkv tensor that is not [3C, C], or a non-float tensor.
std::shared_ptr<ParamSource> open_comfy_single_file(const std::string& path);

}  // namespace zimage
