/*
 * VitPruneToMeMerge: bipartite soft matching + size-weighted merge (ToMe §3, merge_wavg), with the split of
 * the official tome/merge.py: tokens alternate into A (even positions) and B (odd positions) over all N
 * tokens, prefix tokens included, so the ceil(P/2) prefix tokens at even positions are the first A tokens
 * and the floor(P/2) at odd positions the first B tokens. Only the patch tokens of A and B are matched,
 * which protects the prefix tokens as the official -inf rows (class token) and columns (distillation token) do.
 *   1. clamped L2 norms of the patch keys (one warp per token);
 *   2. for every patch A token its best patch B token and that cosine similarity (one warp per A token);
 *   3. stable descending rank of the patch A tokens by that similarity: the first r merge;
 *   4. with prefix tokens, the unmerged A tokens listed in ascending position (the official code sorts them
 *      when there is a class token); without, they stay in rank order (most similar edge first);
 *   5. one block per output row: prefix copy, unmerged A row, or B row plus the A rows merged into it,
 *      each weighted by its size and divided by the summed size (sizes add up).
 * tomePlan (vitpruneKernelMath.h) runs 1–4 in one block per image, the image's patch keys staged in shared
 * memory, where they fit (tomeImageSharedBytes ≤ 48 KB), else as four kernels (1, 2, 3 and, with prefix tokens,
 * two for 4); 5 is always its own launch. Both paths do the same arithmetic in the same order.
 * Indices in the workspace count from the first patch token of A or of B. No atomics, no scatter: deterministic.
 */
#include "tomeMergeKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

//! Where the patch tokens of sets A and B start and how many there are.
struct BipartiteSplit
{
    int aStart; // position of the first patch token of A: 2 * ceil(P / 2)
    int bStart; // position of the first patch token of B: 2 * floor(P / 2) + 1
    int aCount; // ceil(N / 2) - ceil(P / 2)
    int bCount; // floor(N / 2) - floor(P / 2)
};

__host__ __device__ inline BipartiteSplit bipartiteSplit(int tokens, int prefix)
{
    int const protectedA = (prefix + 1) / 2;
    int const protectedB = prefix / 2;
    return BipartiteSplit{2 * protectedA, 2 * protectedB + 1, tomeSetA(tokens, prefix), tokens / 2 - protectedB};
}

struct ToMeWorkspace
{
    float* norms;     // (B, N - P) key norms of the patch tokens
    float* bestValue; // (B, |A_p|) best similarity of each patch A token
    int* bestB;       // (B, |A_p|) its best patch B token
    int* order;       // (B, |A_p|) patch A tokens, most similar edge first
    int* rankOf;      // (B, |A_p|) rank of each patch A token in `order`
    int* unmergedA;   // (B, |A_p| - r) unmerged patch A tokens, ascending (with prefix tokens)
};

ToMeWorkspace carve(void* workspace, int batch, int patches, int setA)
{
    char* base = static_cast<char*>(workspace);
    ToMeWorkspace w{};
    w.norms = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * static_cast<size_t>(batch) * patches);
    w.bestValue = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * static_cast<size_t>(batch) * setA);
    w.bestB = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.order = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.rankOf = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.unmergedA = reinterpret_cast<int*>(base);
    return w;
}

//! The most similar patch B token of patch A token `a` (the first on ties) and that cosine, by one warp.
//! Row p of `patchKeys` and norms[p] belong to the token at position prefix + p.
template <typename S>
__device__ __forceinline__ int bestMatch(
    S const* patchKeys, float const* norms, int dim, int prefix, BipartiteSplit split, int a, float& best)
{
    int const rowA = split.aStart + 2 * a - prefix;
    best = -INFINITY;
    int bestIndex = 0;
    for (int j = 0; j < split.bCount; ++j)
    {
        int const rowB = split.bStart + 2 * j - prefix;
        float const m = warpDot(patchKeys + static_cast<size_t>(rowA) * dim, patchKeys + static_cast<size_t>(rowB) * dim, dim)
            / (norms[rowA] * norms[rowB]);
        if (m > best)
        {
            best = m;
            bestIndex = j;
        }
    }
    return bestIndex;
}

//! Patch A token i writes itself at its place among the unmerged ones (rank >= merges) in ascending position.
__device__ __forceinline__ void listUnmergedToken(int const* rankOf, int setA, int merges, int i, int* unmergedA)
{
    if (rankOf[i] < merges)
        return;
    int place = 0;
    for (int j = 0; j < i; ++j)
        place += rankOf[j] >= merges;
    unmergedA[place] = i;
}

//! Grid (ceil(|A_p| / warps), batch): one warp per patch A token.
template <typename S>
__global__ void tomeMatchKernel(S const* keys, int tokens, int dim, int prefix, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const patches = tokens - prefix;
    BipartiteSplit const split = bipartiteSplit(tokens, prefix);
    int const a = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (a >= split.aCount)
        return;
    float best = 0.F;
    int const bestIndex = bestMatch(keys + (static_cast<size_t>(b) * tokens + prefix) * dim,
        w.norms + static_cast<size_t>(b) * patches, dim, prefix, split, a, best);
    if ((threadIdx.x & 31) == 0)
    {
        w.bestValue[static_cast<size_t>(b) * split.aCount + a] = best;
        w.bestB[static_cast<size_t>(b) * split.aCount + a] = bestIndex;
    }
}

//! Steps 1–4 in one block per image. Grid (batch), kImageThreads threads, tomeImageSharedBytes of dynamic shared
//! memory carved in its order: staged patch keys, norms, best similarities, order, rank of each A token. Writes
//! what the assemble kernel reads: bestB, order and (with prefix tokens) the unmerged list.
template <typename S>
__global__ void __launch_bounds__(kImageThreads) tomeImageKernel(S const* keys, int tokens, int dim, int prefix, int merges, ToMeWorkspace w)
{
    extern __shared__ __align__(16) unsigned char tomeShared[];
    int const b = blockIdx.x;
    int const patches = tokens - prefix;
    BipartiteSplit const split = bipartiteSplit(tokens, prefix);
    int const setA = split.aCount;
    S* staged = reinterpret_cast<S*>(tomeShared);
    float* norms = reinterpret_cast<float*>(tomeShared + alignTo16(sizeof(S) * static_cast<size_t>(patches) * dim));
    float* bestValue = norms + patches;
    int* order = reinterpret_cast<int*>(bestValue + setA);
    int* rankOf = order + setA;
    int const warp = threadIdx.x >> 5;
    int const warps = blockDim.x >> 5;
    int const lane = threadIdx.x & 31;
    copyRow(keys + (static_cast<size_t>(b) * tokens + prefix) * dim, staged, patches * dim);
    __syncthreads();
    for (int p = warp; p < patches; p += warps)
    {
        float const sum = warpDot(staged + static_cast<size_t>(p) * dim, staged + static_cast<size_t>(p) * dim, dim);
        if (lane == 0)
            norms[p] = fmaxf(sqrtf(sum), kNormEps);
    }
    __syncthreads();
    for (int a = warp; a < setA; a += warps)
    {
        float best = 0.F;
        int const bestIndex = bestMatch(staged, norms, dim, prefix, split, a, best);
        if (lane == 0)
        {
            bestValue[a] = best;
            w.bestB[static_cast<size_t>(b) * setA + a] = bestIndex;
        }
    }
    __syncthreads();
    rankByBlock(bestValue, setA, order);
    __syncthreads();
    for (int r = threadIdx.x; r < setA; r += blockDim.x)
    {
        w.order[static_cast<size_t>(b) * setA + r] = order[r];
        rankOf[order[r]] = r;
    }
    __syncthreads();
    if (prefix > 0) // without prefix tokens the unmerged ones stay in rank order
        for (int i = threadIdx.x; i < setA; i += blockDim.x)
            listUnmergedToken(rankOf, setA, merges, i, w.unmergedA + static_cast<size_t>(b) * (setA - merges));
}

//! Grid (ceil(|A_p| / threads), batch): rankOf[order[r]] = r.
__global__ void invertOrderKernel(int setA, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= setA)
        return;
    size_t const row = static_cast<size_t>(b) * setA;
    w.rankOf[row + w.order[row + r]] = r;
}

//! Grid (ceil(|A_p| / threads), batch): every unmerged patch A token (rank >= r) writes itself at its place
//! among the unmerged ones in ascending position.
__global__ void listUnmergedKernel(int setA, int merges, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= setA)
        return;
    listUnmergedToken(w.rankOf + static_cast<size_t>(b) * setA, setA, merges, i,
        w.unmergedA + static_cast<size_t>(b) * (setA - merges));
}

//! Grid (N - r, batch), dynamic shared memory: r ints. One block per output row: the P prefix tokens, the
//! unmerged patch A tokens, then the patch B tokens.
template <typename T, typename S>
__global__ void tomeAssembleKernel(T const* tokens, S const* sizes, int tokensIn, int channels, int prefix, int merges,
    ToMeWorkspace w, T* outTokens, S* outSizes)
{
    extern __shared__ int mergesHere[];
    int const b = blockIdx.y;
    int const row = blockIdx.x;
    BipartiteSplit const split = bipartiteSplit(tokensIn, prefix);
    int const unmerged = split.aCount - merges;
    int const tokensOut = tokensIn - merges;
    int const* order = w.order + static_cast<size_t>(b) * split.aCount;
    int const* bestB = w.bestB + static_cast<size_t>(b) * split.aCount;
    T const* x = tokens + static_cast<size_t>(b) * tokensIn * channels;
    S const* s = sizes + static_cast<size_t>(b) * tokensIn;
    T* out = outTokens + (static_cast<size_t>(b) * tokensOut + row) * channels;
    S* outSize = outSizes + static_cast<size_t>(b) * tokensOut + row;

    if (row < prefix)
    {
        copyRow(x + static_cast<size_t>(row) * channels, out, channels);
        if (threadIdx.x == 0)
            *outSize = s[row];
        return;
    }
    if (row < prefix + unmerged)
    {
        int const k = row - prefix;
        int const a = prefix > 0 ? w.unmergedA[static_cast<size_t>(b) * unmerged + k] : order[merges + k];
        int const source = split.aStart + 2 * a;
        copyRow(x + static_cast<size_t>(source) * channels, out, channels); // exactly, as the reference gathers it
        if (threadIdx.x == 0)
            *outSize = s[source];
        return;
    }
    int const j = row - prefix - unmerged;
    int const destination = split.bStart + 2 * j;
    for (int m = threadIdx.x; m < merges; m += blockDim.x)
        mergesHere[m] = bestB[order[m]] == j ? split.aStart + 2 * order[m] : -1;
    __syncthreads();
    float total = toFloat(s[destination]);
    int received = 0;
    for (int m = 0; m < merges; ++m)
        if (mergesHere[m] >= 0)
        {
            total += toFloat(s[mergesHere[m]]);
            ++received;
        }
    T const* own = x + static_cast<size_t>(destination) * channels;
    if (received == 0) // a B token that receives nothing is copied exactly, size and all
    {
        copyRow(own, out, channels);
        if (threadIdx.x == 0)
            *outSize = s[destination];
        return;
    }
    // b + Σ_a (s_a / s'_b)(a − b): the reference's form of the size-weighted average (functional.merge_weighted_average)
    for (int c = threadIdx.x; c < channels; c += blockDim.x)
    {
        float const mine = toFloat(own[c]);
        float acc = mine;
        for (int m = 0; m < merges; ++m)
        {
            int const source = mergesHere[m];
            if (source >= 0)
                acc += (toFloat(x[static_cast<size_t>(source) * channels + c]) - mine) * (toFloat(s[source]) / total);
        }
        out[c] = fromFloat<T>(acc);
    }
    if (threadIdx.x == 0)
        *outSize = fromFloat<S>(total);
}

struct ToMeLaunch
{
    template <typename T, typename S>
    static int run(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
        void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges, cudaStream_t stream)
    {
        int const patches = tokensIn - numPrefix;
        int const setA = bipartiteSplit(tokensIn, numPrefix).aCount;
        int const keyBytes = static_cast<int>(sizeof(S));
        ToMePlan const plan = tomePlan(batch, tokensIn, keyDim, numPrefix, merges, keyBytes);
        ToMeWorkspace const w = carve(workspace, batch, patches, setA);
        S const* keyRows = static_cast<S const*>(keys);
        int const warps = kThreads / 32;
        forgetEarlierError();
        if (plan.oneBlock)
            tomeImageKernel<S><<<dim3(batch), kImageThreads, tomeImageSharedBytes(patches, keyDim, setA, keyBytes), stream>>>(
                keyRows, tokensIn, keyDim, numPrefix, merges, w);
        if (plan.norms)
            rowNormKernel<S><<<dim3(divUp(patches, warps), batch), kThreads, 0, stream>>>(
                keyRows, tokensIn, keyDim, numPrefix, patches, w.norms);
        if (plan.match)
            tomeMatchKernel<S><<<dim3(divUp(setA, warps), batch), kThreads, 0, stream>>>(keyRows, tokensIn, keyDim, numPrefix, w);
        if (plan.rank)
            rankDescendingKernel<float><<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(
                w.bestValue, setA, 0, setA, w.order);
        if (plan.listUnmerged)
        {
            invertOrderKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, w);
            listUnmergedKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, merges, w);
        }
        if (plan.assemble)
            tomeAssembleKernel<T, S><<<dim3(tokensIn - merges, batch), kThreads, tomeAssembleSharedBytes(merges), stream>>>(
                static_cast<T const*>(tokens), static_cast<S const*>(sizes), tokensIn, channels, numPrefix, merges, w,
                static_cast<T*>(outTokens), static_cast<S*>(outSizes));
        return static_cast<int>(cudaGetLastError());
    }
};

} // namespace

extern "C" size_t vitpruneToMeMergeWorkspaceSize(int batch, int tokens, int numPrefix)
{
    size_t const patches = static_cast<size_t>(tokens - numPrefix);
    size_t const setA = static_cast<size_t>(bipartiteSplit(tokens, numPrefix).aCount);
    size_t const b = static_cast<size_t>(batch);
    return alignUp(sizeof(float) * b * patches) + alignUp(sizeof(float) * b * setA) + 4 * alignUp(sizeof(int) * b * setA);
}

extern "C" int vitpruneToMeMergeTyped(void const* tokens, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    if (batch == 0)
        return 0; // nothing to merge
    if (batch < 1 || channels < 1 || keyDim < 1 || numPrefix < 0 || merges < 0 || patches < 2 || merges > patches / 2
        || tomeAssembleSharedBytes(merges) > kSharedBytesLimit)
        return VITPRUNE_INVALID_ARGUMENT;
    return launchForTypes<ToMeLaunch>(tokensType, sideType, tokens, keys, sizes, outTokens, outSizes, workspace, batch,
        tokensIn, channels, keyDim, numPrefix, merges, stream);
}

extern "C" int vitpruneToMeMerge(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType dtype, cudaStream_t stream)
{
    return vitpruneToMeMergeTyped(tokens, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels, keyDim,
        numPrefix, merges, dtype, dtype, stream);
}
