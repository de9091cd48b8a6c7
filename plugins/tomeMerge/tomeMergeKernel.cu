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
    return BipartiteSplit{2 * protectedA, 2 * protectedB + 1, (tokens + 1) / 2 - protectedA, tokens / 2 - protectedB};
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

//! Grid (ceil(|A_p| / warps), batch): one warp per patch A token.
template <typename T>
__global__ void tomeMatchKernel(T const* keys, int tokens, int dim, int prefix, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const patches = tokens - prefix;
    BipartiteSplit const split = bipartiteSplit(tokens, prefix);
    int const a = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (a >= split.aCount)
        return;
    T const* rows = keys + static_cast<size_t>(b) * tokens * dim;
    float const* norms = w.norms + static_cast<size_t>(b) * patches; // norms[p - prefix]: the token at position p
    int const tokenA = split.aStart + 2 * a;
    float best = -INFINITY;
    int bestIndex = 0;
    for (int j = 0; j < split.bCount; ++j)
    {
        int const tokenB = split.bStart + 2 * j;
        float const m = warpDot(rows + static_cast<size_t>(tokenA) * dim, rows + static_cast<size_t>(tokenB) * dim, dim)
            / (norms[tokenA - prefix] * norms[tokenB - prefix]);
        if (m > best)
        {
            best = m;
            bestIndex = j;
        }
    }
    if ((threadIdx.x & 31) == 0)
    {
        w.bestValue[static_cast<size_t>(b) * split.aCount + a] = best;
        w.bestB[static_cast<size_t>(b) * split.aCount + a] = bestIndex;
    }
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
    int const* rankOf = w.rankOf + static_cast<size_t>(b) * setA;
    if (rankOf[i] < merges)
        return;
    int place = 0;
    for (int j = 0; j < i; ++j)
        place += rankOf[j] >= merges;
    w.unmergedA[static_cast<size_t>(b) * (setA - merges) + place] = i;
}

//! Grid (N - r, batch), dynamic shared memory: r ints. One block per output row: the P prefix tokens, the
//! unmerged patch A tokens, then the patch B tokens.
template <typename T>
__global__ void tomeAssembleKernel(T const* tokens, T const* sizes, int tokensIn, int channels, int prefix, int merges,
    ToMeWorkspace w, T* outTokens, T* outSizes)
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
    T const* s = sizes + static_cast<size_t>(b) * tokensIn;
    T* out = outTokens + (static_cast<size_t>(b) * tokensOut + row) * channels;
    T* outSize = outSizes + static_cast<size_t>(b) * tokensOut + row;

    if (row < prefix)
    {
        for (int c = threadIdx.x; c < channels; c += blockDim.x)
            out[c] = x[static_cast<size_t>(row) * channels + c];
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
        *outSize = fromFloat<T>(total);
}

template <typename T>
int launchToMe(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    int const setA = bipartiteSplit(tokensIn, numPrefix).aCount;
    ToMeWorkspace const w = carve(workspace, batch, patches, setA);
    T const* keyRows = static_cast<T const*>(keys);
    int const warps = kThreads / 32;
    forgetEarlierError();
    rowNormKernel<T><<<dim3(divUp(patches, warps), batch), kThreads, 0, stream>>>(
        keyRows, tokensIn, keyDim, numPrefix, patches, w.norms);
    tomeMatchKernel<T><<<dim3(divUp(setA, warps), batch), kThreads, 0, stream>>>(keyRows, tokensIn, keyDim, numPrefix, w);
    rankDescendingKernel<float><<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(
        w.bestValue, setA, 0, setA, w.order);
    if (numPrefix > 0 && setA > merges) // without prefix tokens the unmerged ones stay in rank order
    {
        invertOrderKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, w);
        listUnmergedKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, merges, w);
    }
    tomeAssembleKernel<T><<<dim3(tokensIn - merges, batch), kThreads, tomeAssembleSharedBytes(merges), stream>>>(
        static_cast<T const*>(tokens), static_cast<T const*>(sizes), tokensIn, channels, numPrefix, merges, w,
        static_cast<T*>(outTokens), static_cast<T*>(outSizes));
    return static_cast<int>(cudaGetLastError());
}

} // namespace

extern "C" size_t vitpruneToMeMergeWorkspaceSize(int batch, int tokens, int numPrefix)
{
    size_t const patches = static_cast<size_t>(tokens - numPrefix);
    size_t const setA = static_cast<size_t>(bipartiteSplit(tokens, numPrefix).aCount);
    size_t const b = static_cast<size_t>(batch);
    return alignUp(sizeof(float) * b * patches) + alignUp(sizeof(float) * b * setA) + 4 * alignUp(sizeof(int) * b * setA);
}

extern "C" int vitpruneToMeMerge(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType dtype, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    if (batch == 0)
        return 0; // nothing to merge
    if (batch < 1 || channels < 1 || keyDim < 1 || numPrefix < 0 || merges < 0 || patches < 2 || merges > patches / 2
        || tomeAssembleSharedBytes(merges) > kSharedBytesLimit)
        return VITPRUNE_INVALID_ARGUMENT;
    if (dtype == VITPRUNE_FLOAT32)
        return launchToMe<float>(tokens, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels, keyDim,
            numPrefix, merges, stream);
    if (dtype == VITPRUNE_FLOAT16)
        return launchToMe<__half>(tokens, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels, keyDim,
            numPrefix, merges, stream);
    return VITPRUNE_INVALID_ARGUMENT;
}
