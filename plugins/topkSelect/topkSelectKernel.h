/*
 * VitPruneTopKSelect kernel, C ABI (VPA paper §3.1, Alg. 1 lines 9–12).
 * tokens (B, N, C), scores (B, N) -> out (B, P + keep, C): the P prefix tokens, then the
 * `keep` best-scoring patch tokens, best first (ties: lower index first; NaN as +inf).
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of device workspace vitpruneTopKSelect needs (none: one launch, every block ranks its own token). */
size_t vitpruneTopKSelectWorkspaceSize(int batch, int tokens, int numPrefix);

/* tokens and out of `tokensType`; scores of `scoresType`: the tokens' type, or float32 whatever the tokens' type. */
int vitpruneTopKSelectTyped(void const* tokens, void const* scores, void* out, void* workspace, int batch, int tokensIn,
    int channels, int numPrefix, int keep, VitPruneDataType tokensType, VitPruneDataType scoresType,
    cudaStream_t stream);

/* Every tensor of `dtype`. */
int vitpruneTopKSelect(void const* tokens, void const* scores, void* out, void* workspace, int batch, int tokensIn,
    int channels, int numPrefix, int keep, VitPruneDataType dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
