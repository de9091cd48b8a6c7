/*
 * VitPruneTopKSelect: rank the patch tokens by score (one thread per token counts
 * how many come before it in the total order: NaN as +inf, ties to the lower index),
 * then gather the prefix rows and the `keep` best rows.
 * Two launches, no sort library, no atomics: the result is deterministic.
 */
#include "topkSelectKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

template <typename T>
int launchTopKSelect(void const* tokens, void const* scores, void* out, void* workspace, int batch, int tokensIn,
    int channels, int numPrefix, int keep, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    int* order = static_cast<int*>(workspace);
    forgetEarlierError();
    rankDescendingKernel<T><<<dim3(divUp(patches, kThreads), batch), kThreads, 0, stream>>>(
        static_cast<T const*>(scores), tokensIn, numPrefix, patches, order);
    gatherRowsKernel<T><<<dim3(numPrefix + keep, batch), kThreads, 0, stream>>>(static_cast<T const*>(tokens),
        tokensIn, channels, numPrefix, order, patches, keep, static_cast<T*>(out));
    return static_cast<int>(cudaGetLastError());
}

} // namespace

extern "C" size_t vitpruneTopKSelectWorkspaceSize(int batch, int tokens, int numPrefix)
{
    return alignUp(sizeof(int) * static_cast<size_t>(batch) * static_cast<size_t>(tokens - numPrefix));
}

extern "C" int vitpruneTopKSelect(void const* tokens, void const* scores, void* out, void* workspace, int batch,
    int tokensIn, int channels, int numPrefix, int keep, VitPruneDataType dtype, cudaStream_t stream)
{
    if (batch == 0)
        return 0; // nothing to select
    if (batch < 1 || channels < 1 || numPrefix < 0 || keep < 1 || numPrefix + keep > tokensIn)
        return VITPRUNE_INVALID_ARGUMENT;
    if (dtype == VITPRUNE_FLOAT32)
        return launchTopKSelect<float>(tokens, scores, out, workspace, batch, tokensIn, channels, numPrefix, keep, stream);
    if (dtype == VITPRUNE_FLOAT16)
        return launchTopKSelect<__half>(tokens, scores, out, workspace, batch, tokensIn, channels, numPrefix, keep, stream);
    return VITPRUNE_INVALID_ARGUMENT;
}
