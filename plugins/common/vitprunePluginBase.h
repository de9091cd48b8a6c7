/*
 * Shared base of the vitprune TensorRT plugins (IPluginV3 with the OneCore/OneBuild/OneRuntime
 * capabilities), the CRTP layer that turns an op's constants into the virtual methods that restate
 * them, and the creator template (IPluginCreatorV3One), written against TensorRT 10.3 (JetPack 6)
 * and valid on later 10.x / 11.x, where IPluginV3 is the plugin interface.
 *
 * Every op here has the same scalar attributes: `num_prefix`, a count (`keep` or `merges`) and,
 * for VPA, `tau`; the ONNX node also carries `plugin_version` and `plugin_namespace`, which
 * TensorRT's ONNX parser consumes to find the creator. An op is a struct in its folder's
 * <op>Plugin.h: its constants (OpTraits kOp, with its launcher's workspace size; its input roles
 * kRoles) and its launch, which maps TensorRT's tensors onto its kernel's C ABI; VitPrunePlugin<Op>
 * is its IPluginV3 and VitPruneCreator<Op> its creator, everything else lives here once.
 *
 * Errors: a check is VITPRUNE_VALIDATE(condition, message), which throws a PluginError; every
 * noexcept method runs its body through guarded(), which catches, reports through TensorRT's logger
 * and returns the method's failure value, so no exception leaves the library.
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"
#include "../common/vitprunePluginShapes.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <exception>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vitprune
{
namespace plugin
{

constexpr char const* kDefaultNamespace = "";

//! Report an error through the logger TensorRT handed to setLoggerFinder (stderr before that).
void reportError(char const* pluginName, char const* where, char const* what) noexcept;

//! What a failed VITPRUNE_VALIDATE throws; guarded() reports its message.
class PluginError : public std::runtime_error
{
public:
    explicit PluginError(std::string const& message)
        : std::runtime_error(message)
    {
    }
};

//! Throw a PluginError with `message` (a string or a C string) unless `condition` holds.
#define VITPRUNE_VALIDATE(condition, message)                                                                          \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(condition))                                                                                              \
            throw ::vitprune::plugin::PluginError(message);                                                            \
    } while (false)

//! body() for a noexcept method: an exception is reported as `pluginName::where: what` and gives `failed`.
template <typename Result, typename Body>
Result guarded(char const* pluginName, char const* where, Result failed, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        reportError(pluginName, where, e.what());
    }
    catch (...)
    {
        reportError(pluginName, where, "unknown exception");
    }
    return failed;
}

//! What an op's count attribute means, and so its output token count and the token counts it accepts.
enum class CountMeaning
{
    kKeptPatches, //!< `keep`: out = P + keep tokens; needs keep >= 1 and N >= P + keep
    kMergedPairs  //!< `merges`: out = N − merges tokens; needs N − P >= 2 and merges <= (N − P) / 2
};

//! The constants of one op, declared once in its plugin class as `kOp` (the spec in
//! vitprune_export/export/ops/spec.py is the truth; tests/export/test_plugin_contract.py holds them to it).
struct OpTraits
{
    char const* name;       //!< plugin name = ONNX op_type
    char const* version;    //!< plugin_version
    char const* countField; //!< "keep" or "merges"
    bool hasTau;            //!< whether the op has the float attribute `tau`
    int32_t nbOutputs;      //!< 1: the tokens; 2: the tokens and their sizes
    CountMeaning count;
    size_t (*workspaceSize)(int batch, int tokens, int numPrefix); //!< the launcher's, from its C ABI
};

//! The scalar attributes of a vitprune plugin node.
struct PluginParams
{
    int32_t numPrefix{1};
    int32_t count{0}; //!< `keep` (TopKSelect, VPA) or `merges` (ToMeMerge)
    float tau{0.001F};
};

//! What enqueue hands an op's launch: TensorRT's input descriptions, the tensors, the workspace and the stream.
struct LaunchCall
{
    nvinfer1::PluginTensorDesc const* inputDesc;
    void const* const* inputs;
    void* const* outputs;
    void* workspace;
    cudaStream_t stream;

    //! Dimension `d` of input `input`, as the kernels' int.
    int dim(int input, int d) const { return static_cast<int>(inputDesc[input].dims.d[d]); }
};

//! The kernels' element type of a TensorRT type (kHALF: fp16, else fp32).
VitPruneDataType kernelType(nvinfer1::DataType type) noexcept;

class VitPrunePluginBase : public nvinfer1::IPluginV3,
                           public nvinfer1::IPluginV3OneCore,
                           public nvinfer1::IPluginV3OneBuild,
                           public nvinfer1::IPluginV3OneRuntime
{
public:
    VitPrunePluginBase(PluginParams params, std::string pluginNamespace);
    ~VitPrunePluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return op().name; }
    char const* getPluginVersion() const noexcept override { return op().version; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return op().nbOutputs; }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(
        int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    //! The op's constants (VitPrunePlugin<Op> returns Op::kOp).
    virtual OpTraits const& op() const noexcept = 0;
    //! The op's inputs in order (name, rank), `count` of them; input 0 is the tokens (batch, tokens, channels).
    virtual InputRole const* inputRoles(int32_t& count) const noexcept = 0;
    //! Run the op's launcher; returns its status (0, VITPRUNE_INVALID_ARGUMENT or a cudaError_t).
    virtual int launch(LaunchCall const& call) const = 0;

    PluginParams mParams;
    std::string mNamespace;

private:
    int32_t nbInputsExpected() const noexcept;
    //! "" when the inputs' shapes fit the op (every input's rank, batch and token count), else what is wrong.
    std::string inputShapeError(nvinfer1::Dims const* const* dims, int32_t nbInputs) const;
    //! Whether a token count N fits num_prefix and the count attribute (op().count says how).
    bool tokensValid(int64_t tokens) const noexcept;

    std::vector<nvinfer1::PluginField> mSerializeFields;
    nvinfer1::PluginFieldCollection mSerializeCollection{};
};

//! The IPluginV3 of op `Op`, the methods that restate its constants written once: `Op` has
//! `static constexpr InputRole kRoles[]`, `static constexpr OpTraits kOp` and
//! `static int launch(PluginParams const&, LaunchCall const&)`.
template <typename Op>
class VitPrunePlugin final : public VitPrunePluginBase
{
public:
    using VitPrunePluginBase::VitPrunePluginBase;

    nvinfer1::IPluginV3* clone() noexcept override
    {
        return guarded<nvinfer1::IPluginV3*>(Op::kOp.name, "clone", nullptr, [&] { return new VitPrunePlugin(*this); });
    }

protected:
    OpTraits const& op() const noexcept override { return Op::kOp; }
    InputRole const* inputRoles(int32_t& count) const noexcept override
    {
        count = static_cast<int32_t>(std::size(Op::kRoles));
        return Op::kRoles;
    }
    int launch(LaunchCall const& call) const override { return Op::launch(mParams, call); }
};

//! Read `num_prefix`, the count field and `tau` (when the op has it) from a field collection; throws a
//! PluginError naming what is missing or out of range.
PluginParams readParams(nvinfer1::PluginFieldCollection const* fc, OpTraits const& op);

//! The creator of op `Op`: its fields and name from Op::kOp; it makes VitPrunePlugin<Op>.
template <typename Op>
class VitPruneCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    VitPruneCreator()
    {
        mFields.emplace_back("num_prefix", nullptr, nvinfer1::PluginFieldType::kINT32, 1);
        mFields.emplace_back(Op::kOp.countField, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
        if (Op::kOp.hasTau)
            mFields.emplace_back("tau", nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }

    char const* getPluginName() const noexcept override { return Op::kOp.name; }
    char const* getPluginVersion() const noexcept override { return Op::kOp.version; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override
    {
        static_cast<void>(name);
        static_cast<void>(phase);
        return guarded<nvinfer1::IPluginV3*>(
            Op::kOp.name, "createPlugin", nullptr, [&] { return new VitPrunePlugin<Op>(readParams(fc, Op::kOp), mNamespace); });
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
    std::string mNamespace{kDefaultNamespace};
};

} // namespace plugin
} // namespace vitprune
