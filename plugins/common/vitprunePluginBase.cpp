/* Shared parts of the vitprune IPluginV3 plugins: capabilities, shapes, formats, fields, launch, error reporting. */
#include "vitprunePluginBase.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>

namespace vitprune
{
namespace plugin
{

nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};
//! Guards gLoggerFinder: TensorRT may set it while another thread's build reports an error.
std::mutex gLoggerMutex;

void setGlobalLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> const lock(gLoggerMutex);
    gLoggerFinder = finder;
}

void reportError(char const* pluginName, char const* where, char const* what) noexcept
{
    try
    {
        std::string const message = std::string(pluginName) + "::" + where + ": " + what;
        std::lock_guard<std::mutex> const lock(gLoggerMutex);
        nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
        if (logger != nullptr)
            logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
        else
            std::fprintf(stderr, "[vitprune] %s\n", message.c_str());
    }
    catch (...)
    {
        std::fprintf(stderr, "[vitprune] %s::%s failed\n", pluginName, where);
    }
}

namespace
{

double readScalar(nvinfer1::PluginField const& field)
{
    VITPRUNE_VALIDATE(field.data != nullptr && field.length >= 1, std::string("attribute ") + field.name + " has no data");
    switch (field.type)
    {
    case nvinfer1::PluginFieldType::kINT32: return *static_cast<int32_t const*>(field.data);
    case nvinfer1::PluginFieldType::kINT64: return static_cast<double>(*static_cast<int64_t const*>(field.data));
    case nvinfer1::PluginFieldType::kFLOAT32: return *static_cast<float const*>(field.data);
    case nvinfer1::PluginFieldType::kFLOAT64: return *static_cast<double const*>(field.data);
    default: break;
    }
    throw PluginError(std::string("attribute ") + field.name + " has an unsupported type");
}

} // namespace

PluginParams readParams(nvinfer1::PluginFieldCollection const* fc, OpTraits const& op)
{
    PluginParams params;
    bool haveNumPrefix = false;
    bool haveCount = false;
    bool haveTau = !op.hasTau;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fc->fields[i];
        if (field.name == nullptr)
            continue; // plugin_version / plugin_namespace and unnamed fields are the parser's business
        if (std::strcmp(field.name, "num_prefix") == 0)
        {
            params.numPrefix = static_cast<int32_t>(readScalar(field));
            haveNumPrefix = true;
        }
        else if (std::strcmp(field.name, op.countField) == 0)
        {
            params.count = static_cast<int32_t>(readScalar(field));
            haveCount = true;
        }
        else if (op.hasTau && std::strcmp(field.name, "tau") == 0)
        {
            params.tau = static_cast<float>(readScalar(field));
            haveTau = true;
        }
    }
    VITPRUNE_VALIDATE(haveNumPrefix && haveCount && haveTau,
        std::string("missing attribute(s): need num_prefix, ") + op.countField + (op.hasTau ? ", tau" : ""));
    VITPRUNE_VALIDATE(params.numPrefix >= 0 && params.count >= 0 && (!op.hasTau || params.tau > 0.F),
        "num_prefix and the count must be >= 0 and tau > 0");
    return params;
}

VitPrunePluginBase::VitPrunePluginBase(PluginParams params, std::string pluginNamespace)
    : mParams(params)
    , mNamespace(std::move(pluginNamespace))
{
}

nvinfer1::IPluginCapability* VitPrunePluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    return guarded<nvinfer1::IPluginCapability*>(getPluginName(), "getCapabilityInterface", nullptr,
        [&]() -> nvinfer1::IPluginCapability* {
            switch (type)
            {
            case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
            }
            return nullptr;
        });
}

int32_t VitPrunePluginBase::nbInputsExpected() const noexcept
{
    int32_t count = 0;
    static_cast<void>(inputRoles(count));
    return count;
}

std::string VitPrunePluginBase::inputShapeError(nvinfer1::Dims const* const* dims, int32_t nbInputs) const
{
    int32_t count = 0;
    InputRole const* roles = inputRoles(count);
    std::vector<InputShape> shapes(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        shapes[static_cast<size_t>(i)].nbDims = dims[i]->nbDims;
        for (int32_t d = 0; d < dims[i]->nbDims && d < 8; ++d)
            shapes[static_cast<size_t>(i)].d[d] = dims[i]->d[d];
    }
    return checkInputShapes(shapes.data(), nbInputs, roles, count);
}

bool VitPrunePluginBase::tokensValid(int64_t tokens) const noexcept
{
    int64_t const patches = tokens - mParams.numPrefix;
    if (op().count == CountMeaning::kKeptPatches)
        return mParams.count >= 1 && patches >= mParams.count;
    return patches >= 2 && mParams.count <= patches / 2;
}

int32_t VitPrunePluginBase::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    static_cast<void>(out);
    static_cast<void>(nbOutputs);
    return guarded<int32_t>(getPluginName(), "configurePlugin", -1, [&] {
        VITPRUNE_VALIDATE(nbInputs == nbInputsExpected(), "wrong number of inputs");
        std::vector<nvinfer1::Dims const*> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
            dims.push_back(&in[i].desc.dims); // -1 where a dimension is not known yet
        std::string const error = inputShapeError(dims.data(), nbInputs);
        VITPRUNE_VALIDATE(error.empty(), error);
        int64_t const tokens = in[0].desc.dims.d[1];
        VITPRUNE_VALIDATE(tokens < 0 || tokensValid(tokens), "token count does not fit num_prefix and the count attribute");
        return 0;
    });
}

int32_t VitPrunePluginBase::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded<int32_t>(getPluginName(), "getOutputDataTypes", -1, [&] {
        VITPRUNE_VALIDATE(nbInputs >= 1 && nbOutputs == op().nbOutputs, "wrong number of inputs or outputs");
        outputTypes[0] = inputTypes[0]; // the kept or merged tokens follow the tokens' type
        for (int32_t i = 1; i < nbOutputs; ++i)
            outputTypes[i] = nvinfer1::DataType::kFLOAT; // the sizes stay fp32
        return 0;
    });
}

int32_t VitPrunePluginBase::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
    nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    static_cast<void>(shapeInputs);
    static_cast<void>(nbShapeInputs);
    return guarded<int32_t>(getPluginName(), "getOutputShapes", -1, [&] {
        VITPRUNE_VALIDATE(nbInputs == nbInputsExpected() && nbOutputs == op().nbOutputs && inputs[0].nbDims == 3,
            "expects " + std::to_string(nbInputsExpected()) + " inputs, tokens of rank 3, "
                + std::to_string(op().nbOutputs) + " output(s)");
        nvinfer1::IDimensionExpr const* tokensOut = op().count == CountMeaning::kKeptPatches
            ? exprBuilder.constant(mParams.numPrefix + mParams.count)
            : exprBuilder.operation(
                nvinfer1::DimensionOperation::kSUB, *inputs[0].d[1], *exprBuilder.constant(mParams.count));
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = tokensOut;
        outputs[0].d[2] = inputs[0].d[2];
        if (nbOutputs == 2)
        {
            outputs[1].nbDims = 2;
            outputs[1].d[0] = inputs[0].d[0];
            outputs[1].d[1] = tokensOut;
        }
        return 0;
    });
}

bool VitPrunePluginBase::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guarded<bool>(getPluginName(), "supportsFormatCombination", false, [&] {
        if (pos < 0 || pos >= nbInputs + nbOutputs)
            return false;
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != nvinfer1::TensorFormat::kLINEAR)
            return false;
        if (pos == 0) // the tokens: fp32 or fp16
            return desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF;
        if (pos == nbInputs) // the kept or merged tokens: the tokens' type
            return desc.type == inOut[0].desc.type;
        // scores, keys, sizes and the output sizes: fp32 whatever the tokens' type, so that fp16 tokens do not
        // round what decides which tokens survive
        return desc.type == nvinfer1::DataType::kFLOAT;
    });
}

size_t VitPrunePluginBase::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    static_cast<void>(outputs);
    static_cast<void>(nbOutputs);
    return guarded<size_t>(getPluginName(), "getWorkspaceSize", 0, [&] {
        VITPRUNE_VALIDATE(nbInputs >= 1, "no inputs");
        nvinfer1::Dims const& largest = inputs[0].max;
        return op().workspaceSize(static_cast<int>(largest.d[0]), static_cast<int>(largest.d[1]), mParams.numPrefix);
    });
}

int32_t VitPrunePluginBase::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    static_cast<void>(out);
    static_cast<void>(nbOutputs);
    return guarded<int32_t>(getPluginName(), "onShapeChange", -1, [&] {
        std::vector<nvinfer1::Dims const*> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
            dims.push_back(&in[i].dims);
        std::string const error = inputShapeError(dims.data(), nbInputs);
        VITPRUNE_VALIDATE(error.empty(), error);
        VITPRUNE_VALIDATE(tokensValid(in[0].dims.d[1]), "the token count does not fit num_prefix and the count attribute");
        return 0;
    });
}

int32_t VitPrunePluginBase::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream) noexcept
{
    static_cast<void>(outputDesc);
    return guarded<int32_t>(getPluginName(), "enqueue", -1, [&] {
        int const status = launch(LaunchCall{inputDesc, inputs, outputs, workspace, stream});
        VITPRUNE_VALIDATE(status == 0, "kernel launch failed with status " + std::to_string(status));
        return 0;
    });
}

nvinfer1::IPluginV3* VitPrunePluginBase::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    static_cast<void>(context);
    return clone(); // clone() is noexcept and reports its own failure
}

nvinfer1::PluginFieldCollection const* VitPrunePluginBase::getFieldsToSerialize() noexcept
{
    return guarded<nvinfer1::PluginFieldCollection const*>(getPluginName(), "getFieldsToSerialize", nullptr, [&] {
        mSerializeFields.clear();
        mSerializeFields.emplace_back("num_prefix", &mParams.numPrefix, nvinfer1::PluginFieldType::kINT32, 1);
        mSerializeFields.emplace_back(op().countField, &mParams.count, nvinfer1::PluginFieldType::kINT32, 1);
        if (op().hasTau)
            mSerializeFields.emplace_back("tau", &mParams.tau, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mSerializeCollection.nbFields = static_cast<int32_t>(mSerializeFields.size());
        mSerializeCollection.fields = mSerializeFields.data();
        return static_cast<nvinfer1::PluginFieldCollection const*>(&mSerializeCollection);
    });
}

VitPruneDataType kernelType(nvinfer1::DataType type) noexcept
{
    return type == nvinfer1::DataType::kHALF ? VITPRUNE_FLOAT16 : VITPRUNE_FLOAT32;
}

} // namespace plugin
} // namespace vitprune
