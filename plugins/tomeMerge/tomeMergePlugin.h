/*
 * VitPruneToMeMerge: tokens (B, N, C), keys (B, N, D), sizes (B, N) -> (B, N - merges, C), (B, N - merges)
 * (ToMe §3, with the official A/B split over all tokens, prefix tokens protected; version 2).
 * The op's constants and launch; VitPrunePlugin<ToMeMergeOp> is its IPluginV3 and VitPruneCreator<ToMeMergeOp>
 * its creator (common/vitprunePluginBase.h), listed in common/vitprunePlugins.cpp.
 */
#pragma once

#include "../common/vitprunePluginBase.h"
#include "tomeMergeKernel.h"

namespace vitprune::plugin
{

struct ToMeMergeOp
{
    static constexpr InputRole kRoles[] = {{"tokens", 3}, {"keys", 3}, {"sizes", 2}};
    static constexpr OpTraits kOp{
        "VitPruneToMeMerge", "2", "merges", false, 2, CountMeaning::kMergedPairs, &vitpruneToMeMergeWorkspaceSize};

    static int launch(PluginParams const& params, LaunchCall const& call);
};

} // namespace vitprune::plugin
