/*
 * VitPruneTopKSelect: tokens (B, N, C), scores (B, N) -> (B, P + keep, C) (VPA paper §3.1, Alg. 1).
 * The op's constants and launch; VitPrunePlugin<TopKSelectOp> is its IPluginV3 and VitPruneCreator<TopKSelectOp>
 * its creator (common/vitprunePluginBase.h), listed in common/vitprunePlugins.cpp.
 */
#pragma once

#include "../common/vitprunePluginBase.h"
#include "topkSelectKernel.h"

namespace vitprune::plugin
{

struct TopKSelectOp
{
    static constexpr InputRole kRoles[] = {{"tokens", 3}, {"scores", 2}};
    static constexpr OpTraits kOp{
        "VitPruneTopKSelect", "1", "keep", false, 1, CountMeaning::kKeptPatches, &vitpruneTopKSelectWorkspaceSize};

    static int launch(PluginParams const& params, LaunchCall const& call);
};

} // namespace vitprune::plugin
