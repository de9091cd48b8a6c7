"""Shared fixtures: a per-session cache of ONNX exports.

Exports are the slow part of the suite (~15 s each for a 12-block ViT with the
dynamo exporter on 2 cores), so each (model, method, options) pair is exported
once per session and shared by the tests that read it.
"""

from __future__ import annotations

import pytest

from tests.helpers import MODEL_CASES, base_model


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """``export_cache(model_name, method, rate=…, dynamic_batch=True, plugins=False, **knobs)`` → (model, ExportResult)."""
    from vitprune_export import apply_method, export_onnx

    folder = tmp_path_factory.mktemp("exports")
    cache: dict[tuple, tuple] = {}

    def get(
        model_name: str, method: str, rate: float = 0.06, dynamic_batch: bool = True, plugins: bool = False, **knobs
    ):
        key = (model_name, method, rate, dynamic_batch, plugins, tuple(sorted(knobs.items())))
        if key not in cache:
            model = apply_method(base_model(model_name, **MODEL_CASES.get(model_name, {})), method, rate=rate, **knobs)
            path = folder / f"{model_name}-{method}-{rate}-{len(cache)}.onnx"
            result = export_onnx(
                model, path, dynamic_batch=dynamic_batch, model_name=model_name, check=False, plugins=plugins
            )
            cache[key] = (model, result)
        return cache[key]

    return get
