"""Registry of token-reduction methods, after timm's ``register_model``.

Each method lives in its own module and registers a :class:`~.base.TokenReduction`
subclass under a name::

    @register_method
    class TopK(TokenReduction):
        name = "topk"
        ...

``get_method(name, **knobs)`` builds one, with a clear error naming the near
misses for an unknown name; ``list_methods()`` gives the names in order.
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any

from ...errors import VitPruneError, did_you_mean

if TYPE_CHECKING:
    from .base import Knob, TokenReduction

_REGISTRY: dict[str, type[TokenReduction]] = {}

#: every method's name and the module that registers it, in the order `list_methods` gives them: known
#: without importing a method module (and so without torch); a module is imported when its method is asked for
METHOD_MODULES = {
    "none": "none",
    "topk": "topk",
    "topk-vpa": "topk_vpa",
    "evit": "evit",
    "etps": "etps",
    "tome": "tome",
    "magnitude": "magnitude",
    "random": "random",
    "first": "first",
    "atpvit-topk": "atpvit",
    "atpvit-evit": "atpvit",
    "ppt": "ppt",
    "bspf": "bspf",
}


def register_method(cls: type[TokenReduction]) -> type[TokenReduction]:
    """Class decorator: register a method under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load(name: str) -> None:
    if name not in _REGISTRY:
        importlib.import_module(f"{__name__}.{METHOD_MODULES[name]}")


def list_methods() -> list[str]:
    """Names of all registered methods, baseline first (the modules stay unimported)."""
    return list(METHOD_MODULES)


def __getattr__(name: str):
    if name in ("Knob", "TokenReduction"):  # the interface, imported with torch only when asked for
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def method_class(name: str) -> type[TokenReduction]:
    """The registered class for ``name``; a clear error for an unknown one."""
    if name not in METHOD_MODULES:
        raise VitPruneError(
            f"unknown method {name!r}{did_you_mean(name, METHOD_MODULES)}; run 'vitprune methods' to list them"
        )
    _load(name)
    return _REGISTRY[name]


def get_method(name: str, **knobs) -> TokenReduction:
    """Build the method ``name`` with its knobs (unknown knobs are an error)."""
    return method_class(name)(**knobs)


def _fits(value: Any, kind: type) -> bool:
    """Whether a JSON value read from a file can stand for a knob of type ``kind`` (a bool is no number)."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def checked_knobs(name: str, values: Any, source: str) -> dict[str, Any]:
    """Method options read from a file (an ONNX record, a checkpoint), checked against ``name``'s declared
    knobs before anything is built: each key a knob of that method, each value of the knob's type.

    Anything else (``model_kwargs``, ``weights``, ``schedule``: words that mean something to the functions
    the options are passed to) is a one-line :class:`VitPruneError`, so a file cannot reach timm's keyword
    arguments or the model's weights.
    """
    if not isinstance(values, dict):
        raise VitPruneError(f"{source}: its method options are a {type(values).__name__}, not an object; re-export it")
    known = {knob.name: knob for knob in method_class(name).knobs}
    for key, value in values.items():
        knob = known.get(key)
        if knob is None:
            raise VitPruneError(
                f"{source} gives method {name!r} an option {str(key)!r} it does not declare "
                f"(its options: {', '.join(known) or 'none'}); re-export the file with 'vitprune export'"
            )
        if not _fits(value, knob.kind):
            raise VitPruneError(
                f"{source}: option {key!r} of method {name!r} is {value!r}, not a {knob.kind.__name__}; re-export it"
            )
    return dict(values)


__all__ = ["Knob", "TokenReduction", "checked_knobs", "get_method", "list_methods", "method_class", "register_method"]
