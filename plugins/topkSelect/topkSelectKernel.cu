/*
 * VitPruneTopKSelect: one launch (topkSelectPlan). One block per token: a prefix block copies its row, a patch
 * block counts how many patches come before its own in the total order (NaN as +inf, ties to the lower index)
 * and, when that rank is below `keep`, copies its row to its place. No sort library, no atomics, no
 * workspace: the result is deterministic and the kept rows are exact copies.
 */
#include "topkSelectKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

struct TopKSelectLaunch
{
    template <typename T, typename S>
    static int run(void const* tokens, void const* scores, void* out, int batch, int tokensIn, int channels,
        int numPrefix, int keep, cudaStream_t stream)
    {
        SelectArgs<T, S> const args{static_cast<T const*>(tokens), static_cast<S const*>(scores), static_cast<T*>(out),
            tokensIn, channels, numPrefix, keep};
        forgetEarlierError();
        if (topkSelectPlan(batch).select)
            selectKernel<T, S><<<dim3(tokensIn, batch), kThreads, 0, stream>>>(args);
        return static_cast<int>(cudaGetLastError());
    }
};

} // namespace

extern "C" size_t vitpruneTopKSelectWorkspaceSize(int batch, int tokens, int numPrefix)
{
    static_cast<void>(batch);
    static_cast<void>(tokens);
    static_cast<void>(numPrefix);
    return 0;
}

extern "C" int vitpruneTopKSelectTyped(void const* tokens, void const* scores, void* out, void* workspace, int batch,
    int tokensIn, int channels, int numPrefix, int keep, VitPruneDataType tokensType, VitPruneDataType scoresType,
    cudaStream_t stream)
{
    static_cast<void>(workspace);
    if (batch == 0)
        return 0; // nothing to select
    if (batch < 1 || channels < 1 || numPrefix < 0 || keep < 1 || numPrefix + keep > tokensIn)
        return VITPRUNE_INVALID_ARGUMENT;
    return launchForTypes<TopKSelectLaunch>(
        tokensType, scoresType, tokens, scores, out, batch, tokensIn, channels, numPrefix, keep, stream);
}

extern "C" int vitpruneTopKSelect(void const* tokens, void const* scores, void* out, void* workspace, int batch,
    int tokensIn, int channels, int numPrefix, int keep, VitPruneDataType dtype, cudaStream_t stream)
{
    return vitpruneTopKSelectTyped(
        tokens, scores, out, workspace, batch, tokensIn, channels, numPrefix, keep, dtype, dtype, stream);
}
