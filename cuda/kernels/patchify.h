// Layout kernels of patchify_and_embed and unpatchify (T0: pure copies).
// patchify_image  Twin: reference/dit/patchify.h patchify_image, then pad_rows_with_last:
//                 image [C, F, H, W] -> tokens [total_rows, pf*p*p*C], in-patch order (pf, ph, pw, c)
//                 with c fastest, tokens in (f, h, w) order; rows past the image repeat its last
//                 token (_pad_with_ids: feat[-1:].repeat). total_rows >= (F/pf)(H/p)(W/p).
// fill_rows       Twin: the pad-token substitution of reference/dit/patchify.h prepare_sequence:
//                 rows [row_begin, row_end) of x [rows, C] (rows of x.ld) <- token [C] (x.dt).
// unpatchify      Twin: reference/dit/patchify.h unpatchify: x [>= n_tokens, P] (rows past the
//                 image ignored) -> image [C, F, H, W] written as fp32.
// Versions: v1 (only): one thread per output element, grid-stride.
#pragma once
#include "common.h"

namespace zimage::gpu {

void patchify_image(DType dt, const void* image, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf,
                    int64_t total_rows, void* tokens, cudaStream_t stream);
void fill_rows(DevRows x, int64_t row_begin, int64_t row_end, const void* token, int64_t C, cudaStream_t stream);
void unpatchify(DType dt, const void* x, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf, float* image,
                cudaStream_t stream);

}  // namespace zimage::gpu
