/*
 * Entry points TensorRT looks for when it loads libvitprune_plugins.so
 * (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, Python registry.load_library):
 * setLoggerFinder and getCreators, which hands out one IPluginCreatorV3One per op of AllPlugins.
 */
#include "../tomeMerge/tomeMergePlugin.h"
#include "../topkSelect/topkSelectPlugin.h"
#include "../vpa/vpaPlugin.h"

#include <tuple>

namespace vitprune
{
namespace plugin
{

void setGlobalLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

//! One creator for each op of the list, and their number, counted from the list itself.
template <typename... Ops>
struct PluginList
{
    static nvinfer1::IPluginCreatorInterface* const* creators(int32_t& count) noexcept
    {
        static std::tuple<VitPruneCreator<Ops>...> instances;
        static nvinfer1::IPluginCreatorInterface* const list[] = {&std::get<VitPruneCreator<Ops>>(instances)...};
        count = static_cast<int32_t>(sizeof...(Ops));
        return list;
    }
};

//! Every plugin of the library: a new op is one folder and one entry here.
using AllPlugins = PluginList<TopKSelectOp, VPAOp, ToMeMergeOp>;

} // namespace plugin
} // namespace vitprune

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    vitprune::plugin::setGlobalLoggerFinder(finder);
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    return vitprune::plugin::AllPlugins::creators(nbCreators);
}
