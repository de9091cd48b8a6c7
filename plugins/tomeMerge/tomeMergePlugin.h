/*
 * VitPruneToMeMerge: tokens (B, N, C), keys (B, N, D), sizes (B, N) -> (B, N - r, C), (B, N - r)
 * (ToMe, ICLR'23, §3; A/B split over all tokens with the num_prefix prefix tokens protected, as the
 * official tome/merge.py; see tomeMergeKernel.h).
 * TensorRT IPluginV3 wrapper of the kernel in tomeMergeKernel.cu; the creator is
 * VitPruneCreator<ToMeMergePlugin> (plugin name "VitPruneToMeMerge", version "2").
 */
#pragma once

#include "../common/vitprunePluginBase.h"

namespace vitprune
{
namespace plugin
{

class ToMeMergePlugin : public VitPrunePluginBase
{
public:
    static constexpr char const* kName = "VitPruneToMeMerge";
    static constexpr char const* kVersion = "2";
    static constexpr char const* kCountField = "merges";
    static constexpr bool kHasTau = false;

    ToMeMergePlugin(PluginParams params, std::string pluginNamespace)
        : VitPrunePluginBase(params, std::move(pluginNamespace))
    {
    }

    nvinfer1::IPluginV3* clone() noexcept override;
    char const* getPluginName() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    int32_t getNbOutputs() const noexcept override { return 2; }
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    char const* countField() const noexcept override { return kCountField; }
    bool hasTau() const noexcept override { return kHasTau; }
    InputRole const* inputRoles(int32_t& count) const noexcept override
    {
        static constexpr InputRole kRoles[3] = {{"tokens", 3}, {"keys", 3}, {"sizes", 2}};
        count = 3;
        return kRoles;
    }
    bool tokensValid(int64_t tokens) const noexcept override
    {
        return tokens - mParams.numPrefix >= 2 && mParams.count <= (tokens - mParams.numPrefix) / 2;
    }
};

using ToMeMergeCreator = VitPruneCreator<ToMeMergePlugin>;

} // namespace plugin
} // namespace vitprune
