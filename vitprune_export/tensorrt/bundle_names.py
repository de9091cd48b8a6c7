"""The names a device bundle's scripts hold, checked against strict patterns before anything is written.

A bundle's ``build.sh``, ``profile.sh`` and ``plan.sh`` run on the user's device (``vitprune deploy`` runs them
over ssh). The names they carry come from files vitprune does not control: the ONNX's file name, node names and
input names, the op types of custom-domain nodes, the pruning record's model and method, the profile's name.
:func:`.bundle_templates.render_script` quotes every one of them; this module refuses, in one line, any that
holds a control character or lies outside the pattern of its kind, so that a hostile or merely odd name never
reaches a device at all.
"""

from __future__ import annotations

import re

from ..errors import VitPruneError

#: file names and the names files are made of (ONNX file, profile/device, model, method, result names)
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
#: ONNX node and tensor names as exporters write them (``/blocks.0/attn/MatMul``, ``node_layer_norm_1``)
TENSOR_NAME = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./-]*")
#: op types of custom-domain (plugin) nodes
OP_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: longest name a script takes
MAX_LENGTH = 200

_KINDS = {
    "file": (FILE_NAME, "A-Z a-z 0-9 _ . + -"),
    "tensor": (TENSOR_NAME, "A-Z a-z 0-9 _ . / -"),
    "op": (OP_TYPE, "A-Z a-z 0-9 _"),
}


def check_name(value: str, kind: str, what: str, fix: str) -> str:
    """``value`` when it matches the pattern of ``kind`` (``file``, ``tensor``, ``op``); else one-line error."""
    pattern, allowed = _KINDS[kind]
    if not isinstance(value, str) or len(value) > MAX_LENGTH or not pattern.fullmatch(value):
        shown = ascii(value) if isinstance(value, str) else type(value).__name__
        raise VitPruneError(
            f"{what} {shown[:80]} is not a name a device script may hold (only {allowed}, at most {MAX_LENGTH} "
            f"characters, not starting with '-' or '.'); {fix}"
        )
    return value


__all__ = ["FILE_NAME", "MAX_LENGTH", "OP_TYPE", "TENSOR_NAME", "check_name"]
