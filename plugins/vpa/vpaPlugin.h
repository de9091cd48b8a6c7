/*
 * VitPruneVPA: tokens (B, N, C), scores (B, N), keys (B, N, D), sizes (B, N) -> (B, P + keep, C), (B, P + keep)
 * (VPA paper §3.2, Eq. 4–5). The op's constants and launch; VitPrunePlugin<VPAOp> is its IPluginV3 and
 * VitPruneCreator<VPAOp> its creator (common/vitprunePluginBase.h), listed in common/vitprunePlugins.cpp.
 */
#pragma once

#include "../common/vitprunePluginBase.h"
#include "vpaKernel.h"

namespace vitprune::plugin
{

struct VPAOp
{
    static constexpr InputRole kRoles[] = {{"tokens", 3}, {"scores", 2}, {"keys", 3}, {"sizes", 2}};
    static constexpr OpTraits kOp{"VitPruneVPA", "1", "keep", true, 2, CountMeaning::kKeptPatches, &vitpruneVPAWorkspaceSize};

    static int launch(PluginParams const& params, LaunchCall const& call);
};

} // namespace vitprune::plugin
