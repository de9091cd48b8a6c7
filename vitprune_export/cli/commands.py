"""The commands ``vitprune`` has, as data: name, the module that defines it, and its one-line summary.

``vitprune --help`` lists this table without importing a single command module (and so without torch,
timm or onnx); a command's module is imported only when that command runs or shows its own help. The
summary is the command's ``short_help`` too, so the listing reads the same before and after a load.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandEntry(NamedTuple):
    module: str
    summary: str


# In the order `vitprune --help` lists them.
COMMANDS: dict[str, CommandEntry] = {
    "methods": CommandEntry("methods", "List the token-reduction methods: paper, knobs, TensorRT status."),
    "export": CommandEntry("export", "Export a token-pruned ViT to ONNX with static per-layer token counts."),
    "flops": CommandEntry("flops", "MACs and parameters of the pruned model, and the ratio to the unpruned one."),
    "quantize": CommandEntry("quantize", "Quantize an ONNX to INT8/FP8 Q/DQ, calibrated on real images."),
    "rewrite": CommandEntry("rewrite", "Plugin nodes ⇄ standard ONNX ops ⇄ TensorRT plugin nodes."),
    "plugins": CommandEntry("plugins", "Build the vitprune TensorRT plugin library."),
    "build": CommandEntry("build", "Build a TensorRT engine for a device profile, with a JSON beside it."),
    "bundle": CommandEntry("bundle", "A self-contained folder to build and measure on a device (Jetson)."),
    "deploy": CommandEntry("deploy", "Run a bundle on a device over SSH and bring its results back."),
    "profile": CommandEntry("profile", "Measure latency on one backend and write a results JSON."),
    "plan": CommandEntry("plan", "Keep counts from the device's own block latency, for a target latency."),
    "bench": CommandEntry("bench", "Measure the grid of models × methods × backends …, interleaved."),
    "compare": CommandEntry("compare", "Results → the device table (Δ% vs the baseline) and plots."),
    "eval": CommandEntry("eval", "Top-1 accuracy of a pruned model (PyTorch, ONNX Runtime)."),
    "finetune": CommandEntry("finetune", "Fine-tune a pruned ViT on a data set; write a checkpoint."),
    "adjust": CommandEntry("adjust", "Fine-tune while adjusting each layer's pruning rate (GAS)."),
    "check": CommandEntry("check", "What this machine can do: PyTorch, GPUs, runtimes, TensorRT, plugins."),
}
