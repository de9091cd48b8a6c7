/* VitPruneVPA: TensorRT's tensors onto vitpruneVPATyped (scores, keys and sizes share one type, fp32 in TensorRT). */
#include "vpaPlugin.h"

namespace vitprune::plugin
{

int VPAOp::launch(PluginParams const& params, LaunchCall const& call)
{
    enum Input { kTokens, kScores, kKeys, kSizes };
    void* const* out = call.outputs; // kept tokens, kept sizes
    return vitpruneVPATyped(call.inputs[kTokens], call.inputs[kScores], call.inputs[kKeys], call.inputs[kSizes], out[0],
        out[1], call.workspace, call.dim(kTokens, 0), call.dim(kTokens, 1), call.dim(kTokens, 2), call.dim(kKeys, 2),
        params.numPrefix, params.count, params.tau, kernelType(call.inputDesc[kTokens].type),
        kernelType(call.inputDesc[kScores].type), call.stream);
}

} // namespace vitprune::plugin
