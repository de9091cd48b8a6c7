/* VitPruneToMeMerge: TensorRT's tensors onto vitpruneToMeMergeTyped (keys and sizes in one type, fp32 in TensorRT). */
#include "tomeMergePlugin.h"

namespace vitprune::plugin
{

int ToMeMergeOp::launch(PluginParams const& params, LaunchCall const& call)
{
    nvinfer1::DataType const tokensType = call.inputDesc[0].type;
    nvinfer1::DataType const keysType = call.inputDesc[1].type;
    // inputs: tokens, keys, sizes; outputs: merged tokens, merged sizes
    return vitpruneToMeMergeTyped(call.inputs[0], call.inputs[1], call.inputs[2], call.outputs[0], call.outputs[1],
        call.workspace, call.dim(0, 0), call.dim(0, 1), call.dim(0, 2), call.dim(1, 2), params.numPrefix, params.count,
        kernelType(tokensType), kernelType(keysType), call.stream);
}

} // namespace vitprune::plugin
