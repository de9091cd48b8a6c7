/*
 * VitPruneToMeMerge kernel, C ABI (Bolya et al., Token Merging, ICLR 2023, §3).
 * tokens (B, N, C), keys (B, N, D), sizes (B, N) -> merged tokens (B, N - r, C) and sizes (B, N - r).
 * Patch tokens (after the P prefix tokens) alternate into sets A (even) and B (odd); each A token's
 * edge goes to its most similar B token (cosine of keys); the r most similar edges merge by a
 * size-weighted average. Output rows: prefix, unmerged A (most similar edge first), all B (original order).
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

size_t vitpruneToMeMergeWorkspaceSize(int batch, int tokens, int numPrefix);

int vitpruneToMeMerge(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
