/* VitPruneTopKSelect: TensorRT's tensors onto vitpruneTopKSelectTyped (scores in their own type, fp32 in TensorRT). */
#include "topkSelectPlugin.h"

namespace vitprune::plugin
{

int TopKSelectOp::launch(PluginParams const& params, LaunchCall const& call)
{
    return vitpruneTopKSelectTyped(call.inputs[0], call.inputs[1], call.outputs[0], call.workspace, call.dim(0, 0),
        call.dim(0, 1), call.dim(0, 2), params.numPrefix, params.count, kernelType(call.inputDesc[0].type),
        kernelType(call.inputDesc[1].type), call.stream);
}

} // namespace vitprune::plugin
