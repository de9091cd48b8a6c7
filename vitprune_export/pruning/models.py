"""Creating timm ViTs with the weights the user asked for.

``weights``: ``auto`` (timm's pretrained weights when they can be had, otherwise
random weights with a loud warning), ``random``, or a checkpoint path. Whatever
happens is recorded in :data:`WEIGHTS_SOURCE_ATTR` on the model, and export
writes it into the ONNX metadata.

Offline, timm's hub download retries for ~47 s; ``auto`` first looks in the
local cache with the hub switched to offline mode, then probes the hub with a
short timeout, so an offline machine falls back in about a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import torch

from .._compat import import_timm
from ..errors import VitPruneError, did_you_mean

log = logging.getLogger("vitprune")

WEIGHTS_SOURCE_ATTR = "vitprune_weights_source"
HUB_HOST = "huggingface.co"
DEFAULT_MODEL = "vit_small_patch16_224"
#: the CLI initialises random weights with this seed, so the same command writes the same model
CLI_RANDOM_SEED = 0


def _register_tiny_models() -> None:
    """A tiny ViT for 32×32 inputs (8×8 patches of 4 px), small enough to fine-tune on 2 CPU cores."""
    timm = import_timm()
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if "vitprune_tiny_patch4_32" in timm.list_models("vitprune_*"):
        return

    @register_model
    def vitprune_tiny_patch4_32(pretrained: bool = False, **kwargs) -> VisionTransformer:
        """ViT for 32×32 images: 64 patch tokens + CLS, width 96, 6 blocks, 3 heads."""
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's factory passes these
            kwargs.pop(key, None)
        args = {
            "img_size": 32,
            "patch_size": 4,
            "embed_dim": 96,
            "depth": 6,
            "num_heads": 3,
            "mlp_ratio": 3.0,
            "num_classes": 10,
            **kwargs,
        }
        if pretrained:
            raise VitPruneError(
                "vitprune_tiny_patch4_32 has no pretrained weights; use --weights random or a checkpoint"
            )
        return VisionTransformer(**args)


def list_model_names() -> list[str]:
    timm = import_timm()
    _register_tiny_models()
    return timm.list_models()


def _near_models(name: str, names: list[str]) -> str:
    """``" (did you mean …?)"``: the models whose name starts with ``name`` (``deit_tiny`` →
    ``deit_tiny_patch16_224``) first, else the closest spellings."""
    if name:
        starting = sorted((n for n in names if n.startswith(name)), key=len)[:3]
        if starting:
            return " (did you mean " + " or ".join(repr(n) for n in starting) + "?)"
    return did_you_mean(name, names)


def check_model_name(name: str) -> None:
    names = list_model_names()
    if name not in names:
        raise VitPruneError(f"unknown model {name!r}{_near_models(name, names)}; see timm.list_models()")


@contextlib.contextmanager
def _hub_offline():
    """Switch huggingface_hub to offline mode for the duration (cache only, no retries)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm depends on it
        yield
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when a TCP connection to the model hub opens within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _create(name: str, pretrained: bool, seed: int | None = None, **model_kwargs) -> torch.nn.Module:
    """timm's model; random weights drawn from ``seed`` when given, leaving the caller's RNG state untouched."""
    timm = import_timm()
    _register_tiny_models()
    if pretrained or seed is None:
        return timm.create_model(name, pretrained=pretrained, **model_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, **model_kwargs)


def _random_source(reason: str | None, seed: int | None) -> str:
    details = [part for part in (reason, None if seed is None else f"seed {seed}") if part]
    return "random" + (f" ({', '.join(details)})" if details else "")


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint: a state dict, or a dict holding one under ``state_dict``/``model``."""
    path = Path(path)
    if path.is_dir():
        raise VitPruneError(f"checkpoint {str(path)!r} is a folder; give the .pt file 'vitprune finetune' wrote")
    if not path.is_file():
        raise VitPruneError(
            f"checkpoint {str(path)!r} does not exist; --weights takes auto, random, or a checkpoint file "
            "saved by 'vitprune finetune' or torch.save"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        raise VitPruneError(
            f"checkpoint {str(path)!r} cannot be read ({type(error).__name__}); is it a PyTorch checkpoint?"
        ) from None
    if not isinstance(checkpoint, dict):
        raise VitPruneError(f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a state dict")
    return checkpoint


def _state_dict_of(checkpoint: dict) -> dict:
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


#: the model arguments a checkpoint may carry to timm.create_model, with their bounds; anything else
#: (``checkpoint_path``, ``pretrained_cfg_overlay``, ``img_size``, ``depth``, …) could point timm at another
#: file or reshape the model, so a checkpoint naming it is refused
CHECKPOINT_MODEL_ARGUMENTS = {"num_classes": (1, 1_000_000)}


def checked_model_kwargs(values: Any, source: str) -> dict[str, int]:
    """``model_kwargs`` read from a checkpoint, checked against :data:`CHECKPOINT_MODEL_ARGUMENTS`."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise VitPruneError(f"{source}: its model_kwargs are a {type(values).__name__}, not an object; re-save it")
    for key, value in values.items():
        if key not in CHECKPOINT_MODEL_ARGUMENTS:
            raise VitPruneError(
                f"{source} asks timm for model argument {str(key)!r}; a checkpoint may only carry "
                f"{', '.join(CHECKPOINT_MODEL_ARGUMENTS)}: re-save it with 'vitprune finetune'"
            )
        low, high = CHECKPOINT_MODEL_ARGUMENTS[key]
        if type(value) is not int or not low <= value <= high:
            raise VitPruneError(f"{source}: model argument {key!r} is {value!r}, not a whole number in {low}–{high}")
    return dict(values)


def create_model(
    name: str = DEFAULT_MODEL, weights: str | Path = "auto", seed: int | None = None, **model_kwargs
) -> torch.nn.Module:
    """A timm model in eval mode with ``weights`` = ``auto`` | ``random`` | checkpoint path.

    ``seed``: random weights are drawn from it (and it is recorded in the weights source);
    None draws them from torch's global generator, as timm does.
    """
    check_model_name(name)
    weights = str(weights)
    if weights == "random":
        model, source = _create(name, False, seed, **model_kwargs), _random_source(None, seed)
    elif weights == "auto":
        model, source = _create_auto(name, seed, **model_kwargs)
    else:
        checkpoint = load_checkpoint(weights)
        kwargs = {**checked_model_kwargs(checkpoint.get("model_kwargs"), f"checkpoint {weights!r}"), **model_kwargs}
        saved_name = checkpoint.get("model_name")
        if isinstance(saved_name, str) and saved_name != name:
            raise VitPruneError(
                f"checkpoint {weights!r} was saved for model {saved_name!r}, not {name!r}; pass --model {saved_name}"
            )
        model = _create(name, False, **kwargs)
        try:
            model.load_state_dict(_state_dict_of(checkpoint))
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise VitPruneError(f"checkpoint {weights!r} does not fit model {name!r}: {first}") from None
        source = f"checkpoint:{Path(weights).name}"
    setattr(model, WEIGHTS_SOURCE_ATTR, source)
    return model.eval()


def _create_auto(name: str, seed: int | None = None, **model_kwargs) -> tuple[torch.nn.Module, str]:
    timm = import_timm()
    _register_tiny_models()
    if not timm.is_model_pretrained(name):
        _warn_random(name, "timm has no pretrained weights for it")
        return _create(name, False, seed, **model_kwargs), _random_source("no pretrained weights exist", seed)
    with _hub_offline(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _create(name, True, **model_kwargs), "pretrained (timm, cached)"
        except Exception:
            pass
    if hub_reachable():
        try:
            return _create(name, True, **model_kwargs), "pretrained (timm, downloaded)"
        except Exception as error:
            reason = f"the download failed ({type(error).__name__})"
    else:
        reason = f"{HUB_HOST} cannot be reached and the weights are not cached"
    _warn_random(name, reason)
    return _create(name, False, seed, **model_kwargs), _random_source("pretrained weights unavailable", seed)


def _warn_random(name: str, reason: str) -> None:
    message = (
        f"USING RANDOM WEIGHTS for {name}: {reason}. Latency and parity are still meaningful; "
        "accuracy is not. Pass --weights PATH for a checkpoint."
    )
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def weights_source(model: torch.nn.Module) -> str:
    return getattr(model, WEIGHTS_SOURCE_ATTR, "unknown")


def architecture(model: torch.nn.Module) -> str:
    """timm's model name from the pretrained config, else the (unpatched) class name."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict) and cfg.get("architecture"):
            return str(cfg["architecture"])
    return getattr(model, "_vitprune_original_class", type(model)).__name__


def input_size_of(model: torch.nn.Module) -> tuple[int, int, int]:
    """(channels, height, width) of one input image."""
    channels = int(getattr(model.patch_embed.proj, "in_channels", 3))
    height, width = model.patch_embed.img_size
    return channels, int(height), int(width)
