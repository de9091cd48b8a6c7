/*
 * VitPruneVPA kernel, C ABI (Ishibashi & Meng 2025, §3.2, Eq. 4–5).
 * tokens (B, N, C), scores (B, N), keys (B, N, D), sizes (B, N) ->
 * kept tokens (B, P + keep, C) in score order and their sizes (B, P + keep):
 *   s = s_keep + s_rm · softmax_k(M / (Σ_k M_jk · τ)),  M_jk = cos(key_removed_j, key_kept_k),
 * a row sum of exactly 0 nudged to ±1e-6 keeping its sign; prefix sizes pass through.
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

size_t vitpruneVPAWorkspaceSize(int batch, int tokens, int numPrefix);

/* tokens and outTokens of `tokensType`; scores, keys, sizes and outSizes of `sideType`: the tokens' type, or
 * float32 whatever the tokens' type (fp16 tokens then do not round the scores before ranking). */
int vitpruneVPATyped(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
    float tau, VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t stream);

/* Every tensor of `dtype`. */
int vitpruneVPA(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
    float tau, VitPruneDataType dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
