/*
 * The maths of the vitprune kernels that does not need a GPU: the total order tokens are ranked by, the
 * shared-memory bytes each kernel holds, and each launcher's plan — which kernels it launches for given
 * shapes, hence its launches per call. `__host__ __device__` under nvcc, plain inline functions under a
 * C++ compiler, so tests/export/test_kernel_math.py compiles this very file with g++ and checks it on the
 * CPU in CI; the launchers branch on these plans and nothing else.
 */
#pragma once

#include <cstddef>

#if defined(__CUDACC__)
#define VITPRUNE_HOST_DEVICE __host__ __device__
#else
#define VITPRUNE_HOST_DEVICE
#endif

namespace vitprune
{

//! Threads per block of the kernels that run one block per token or row.
constexpr int kThreads = 128;
//! Threads per block of the kernels that run one block per image (all of an image's maths in one block).
constexpr int kImageThreads = 512;
//! Dynamic + static shared memory a block may use without an opt-in (every GPU since Kepler).
constexpr size_t kSharedBytesLimit = 48 * 1024;

//! The key a score is ranked by: NaN counts as +infinity (PyTorch sorts NaN as the largest value), so
//! the order below is total and a rank is never shared.
VITPRUNE_HOST_DEVICE inline float rankKey(float value)
{
    float const infinity = __builtin_inff();
    return value != value ? infinity : value;
}

//! True when the score `other` at index `j` comes before the score `value` at index `i` in descending order:
//! larger key first, equal keys (ties, NaN against +inf, NaN against NaN) by the lower index — the order of a
//! stable descending sort. For every i != j exactly one of ranksBefore(i, j), ranksBefore(j, i) holds.
VITPRUNE_HOST_DEVICE inline bool ranksBefore(float other, int j, float value, int i)
{
    float const a = rankKey(other);
    float const b = rankKey(value);
    return a > b || (a == b && j < i);
}

//! `bytes` rounded up to a multiple of 16 (where a shared array of floats or ints may start after staged keys).
VITPRUNE_HOST_DEVICE inline size_t alignTo16(size_t bytes)
{
    return (bytes + 15) & ~static_cast<size_t>(15);
}

//! Bytes of shared memory VPA's row-statistics pass (multi-launch path) takes for `keep` kept tokens: one
//! float similarity per kept token (dynamic) and the block-sum scratch of kThreads / 32 floats (static).
VITPRUNE_HOST_DEVICE inline size_t vpaRowStatsSharedBytes(int keep)
{
    return sizeof(float) * static_cast<size_t>(keep) + sizeof(float) * (kThreads / 32);
}

//! The largest `keep` VPA's row-statistics pass fits in kSharedBytesLimit.
VITPRUNE_HOST_DEVICE inline int vpaMaxKeep()
{
    return static_cast<int>((kSharedBytesLimit - sizeof(float) * (kThreads / 32)) / sizeof(float));
}

//! Bytes of shared memory ToMe's assemble pass takes for `merges` merged tokens (one int each, at least one).
VITPRUNE_HOST_DEVICE inline size_t tomeAssembleSharedBytes(int merges)
{
    return sizeof(int) * static_cast<size_t>(merges > 0 ? merges : 1);
}

//! Bytes of shared memory VPA's one-block-per-image kernel takes (all of it dynamic, carved in this order): the
//! image's patch keys staged in their own type (`keyBytes` each: 4 fp32, 2 fp16), then per patch its key norm
//! and its place in the order, per kept token its similarity to the removed token at hand and the size it has
//! gathered so far, and the block-reduction scratch.
VITPRUNE_HOST_DEVICE inline size_t vpaImageSharedBytes(int patches, int keyDim, int keep, int keyBytes)
{
    size_t const keys = alignTo16(static_cast<size_t>(patches) * static_cast<size_t>(keyDim) * static_cast<size_t>(keyBytes));
    return keys + (sizeof(float) + sizeof(int)) * static_cast<size_t>(patches) + 2 * sizeof(float) * static_cast<size_t>(keep)
        + sizeof(float) * (kImageThreads / 32);
}

//! Bytes of shared memory ToMe's one-block-per-image matching kernel takes: the image's patch keys staged in
//! their own type, their norms, and per patch A token its best similarity, its place in the order and its rank.
VITPRUNE_HOST_DEVICE inline size_t tomeImageSharedBytes(int patches, int keyDim, int setA, int keyBytes)
{
    size_t const keys = alignTo16(static_cast<size_t>(patches) * static_cast<size_t>(keyDim) * static_cast<size_t>(keyBytes));
    return keys + sizeof(float) * static_cast<size_t>(patches) + (sizeof(float) + 2 * sizeof(int)) * static_cast<size_t>(setA);
}

//! The kernels a TopKSelect call launches: one select kernel (one block per prefix or patch token ranks its
//! token and copies its row to its place), none at batch 0.
struct TopKSelectPlan
{
    bool select;

    VITPRUNE_HOST_DEVICE int launches() const { return select ? 1 : 0; }
};

VITPRUNE_HOST_DEVICE inline TopKSelectPlan topkSelectPlan(int batch)
{
    return TopKSelectPlan{batch > 0};
}

//! The kernels a VPA call launches. Where the image's keys and per-token state fit in kSharedBytesLimit, one
//! kernel: block 0 of each image ranks, normalises and spreads the sizes (every cosine once), the other blocks
//! each rank one token and copy its row. Otherwise three: select (rank, key norm, row copy, one block per
//! token), the row statistics (one block per removed token; skipped when nothing is removed) and the spread
//! (one block per kept token).
struct VPAPlan
{
    bool oneBlock;
    bool select;
    bool rowStats;
    bool spread;

    VITPRUNE_HOST_DEVICE int launches() const
    {
        return static_cast<int>(oneBlock) + static_cast<int>(select) + static_cast<int>(rowStats) + static_cast<int>(spread);
    }
};

VITPRUNE_HOST_DEVICE inline VPAPlan vpaPlan(int batch, int patches, int keyDim, int keep, int keyBytes)
{
    if (batch <= 0)
        return VPAPlan{false, false, false, false};
    bool const oneBlock = vpaImageSharedBytes(patches, keyDim, keep, keyBytes) <= kSharedBytesLimit;
    return VPAPlan{oneBlock, !oneBlock, !oneBlock && patches > keep, !oneBlock};
}

//! The kernels a ToMe call launches. Where the image's keys fit in kSharedBytesLimit, two: one block per image
//! computes the key norms, every A token's best B token, the rank of the edges and the unmerged list, then the
//! assemble kernel writes one row per block. Otherwise the norms, match and rank kernels, with prefix tokens and
//! unmerged A tokens the inversion of the order and the unmerged list, then assemble: four to six.
struct ToMePlan
{
    bool oneBlock;
    bool norms;
    bool match;
    bool rank;
    bool listUnmerged; //!< two kernels: invert the order, list the unmerged A tokens in ascending position
    bool assemble;

    VITPRUNE_HOST_DEVICE int launches() const
    {
        return static_cast<int>(oneBlock) + static_cast<int>(norms) + static_cast<int>(match) + static_cast<int>(rank)
            + 2 * static_cast<int>(listUnmerged) + static_cast<int>(assemble);
    }
};

//! Patch tokens of set A for `tokens` tokens of which `prefix` are prefix tokens (A = the even positions).
VITPRUNE_HOST_DEVICE inline int tomeSetA(int tokens, int prefix)
{
    return (tokens + 1) / 2 - (prefix + 1) / 2;
}

VITPRUNE_HOST_DEVICE inline ToMePlan tomePlan(int batch, int tokens, int keyDim, int prefix, int merges, int keyBytes)
{
    if (batch <= 0)
        return ToMePlan{false, false, false, false, false, false};
    int const setA = tomeSetA(tokens, prefix);
    bool const oneBlock = tomeImageSharedBytes(tokens - prefix, keyDim, setA, keyBytes) <= kSharedBytesLimit;
    bool const listUnmerged = !oneBlock && prefix > 0 && setA > merges; // without prefix tokens: rank order
    return ToMePlan{oneBlock, !oneBlock, !oneBlock, !oneBlock, listUnmerged, true};
}

} // namespace vitprune
