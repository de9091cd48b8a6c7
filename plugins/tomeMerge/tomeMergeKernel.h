/*
 * VitPruneToMeMerge kernel, C ABI (Bolya et al., Token Merging, ICLR 2023, §3).
 * tokens (B, N, C), keys (B, N, D), sizes (B, N) -> merged tokens (B, N - r, C) and sizes (B, N - r).
 * All N tokens alternate into sets A (even positions) and B (odd), prefix tokens included, as in the
 * official tome/merge.py; prefix tokens never merge. Each patch A token's edge goes to its most similar
 * patch B token (cosine of keys); the r most similar edges merge by a size-weighted average. Output rows:
 * the P prefix tokens, the unmerged patch A tokens (ascending position; edge order when P = 0), then the
 * patch B tokens (original order). r <= floor((N - P) / 2).
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

size_t vitpruneToMeMergeWorkspaceSize(int batch, int tokens, int numPrefix);

/* tokens and outTokens of `tokensType`; keys, sizes and outSizes of `sideType`: the tokens' type, or float32
 * whatever the tokens' type (fp16 tokens then do not round the similarities that decide the merges). */
int vitpruneToMeMergeTyped(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t stream);

/* Every tensor of `dtype`. */
int vitpruneToMeMerge(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
