"""``random``: ablation that keeps a seeded random choice of tokens.

Ishibashi & Meng 2025, §4.1.4 (comparison pruning methods: Random). The choice
is drawn once per block when the model is patched (from ``token_seed`` and the
block index), so PyTorch and the exported graph keep the very same tokens and the
graph holds no random op. The choice is the same for every image.
"""

from __future__ import annotations

import torch

from . import register_method
from .base import Knob, LayerPlan, TokenReduction
from .functional import keep_top_tokens


@register_method
class RandomSelection(TokenReduction):
    name = "random"
    paper = "Ishibashi & Meng 2025, §4.1.4"
    summary = "ablation: keep a seeded random choice of tokens"
    knobs = (Knob("token_seed", 0, "seed of the random token choice (not the run's --seed)"),)
    tensorrt = "standard ONNX ops"

    def __init__(self, **knobs):
        if "seed" in knobs and "token_seed" not in knobs:  # records written before the knob was renamed
            knobs["token_seed"] = knobs.pop("seed")
        super().__init__(**knobs)

    def setup(self, plan: LayerPlan) -> None:
        if not hasattr(self, "_scores"):
            self._scores: dict[int, torch.Tensor] = {}
        generator = torch.Generator().manual_seed(int(self.token_seed) * 1_000_003 + plan.layer)
        self._scores[plan.layer] = torch.rand(plan.tokens_in, generator=generator)

    def reduce(self, x, attention, size, plan):
        scores = self._scores[plan.layer].to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1)
        x, _ = keep_top_tokens(x, scores, plan.num_prefix, plan.tokens_out - plan.num_prefix)
        return x, size
