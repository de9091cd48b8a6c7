"""A bundle's scripts run nothing that an ONNX, its record or a profile names.

Hostile names (shell syntax, a newline that would end a comment) are refused at ``bundle`` time in one line,
exit 2, nothing written; and the scripts quote every value they hold, so that even such names reach
``trtexec`` as single argv words and run nothing (the real ``build.sh --trtexec`` under a stand-in trtexec).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import trtexec_standin
from vitprune_export.cli import app
from vitprune_export.record import METADATA_KEY
from vitprune_export.tensorrt.bundle_templates import BUILD_SH, PLAN_SH, PROFILE_SH, render_script
from vitprune_export.tensorrt.profiles import resolve_profile_path
from vitprune_export.tensorrt.settings import fp32_layers_of

TINY = "vitprune_tiny_patch4_32"
#: a node name that, spliced into ``--layerPrecisions``, ran ``touch PWNED`` on the device
HOSTILE = "x;touch${IFS}PWNED;#"


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    _, result = export_cache(TINY, "topk", rate=0.1)
    return result.path


def _edit(source: Path, target: Path, change) -> Path:
    proto = onnx.load(str(source))
    change(proto)
    onnx.save(proto, str(target))
    return target


def _rename_fp32_node(proto):
    name = _first_fp32_layer(proto)
    next(node for node in proto.graph.node if node.name == name).name = HOSTILE


def _first_fp32_layer(proto):
    return fp32_layers_of(proto, [])[0]


def _rename_input(proto):
    old = proto.graph.input[0].name
    proto.graph.input[0].name = HOSTILE
    for node in proto.graph.node:
        node.input[:] = [HOSTILE if name == old else name for name in node.input]


def _add_custom_op(proto):
    source = proto.graph.node[0].output[0]
    proto.graph.node.append(
        onnx.helper.make_node("Evil\ntouch PWNED", [source], ["evil_out"], domain="evil.domain", name="evil")
    )


def _hostile_model(proto):
    entry = next(e for e in proto.metadata_props if e.key == METADATA_KEY)
    record = json.loads(entry.value)
    record["model"] = "vit$(touch PWNED)"
    entry.value = json.dumps(record)


def _hostile_profile(folder: Path) -> Path:
    text = resolve_profile_path("jetson-orin-nano").read_text()
    path = folder / "evil.toml"
    path.write_text(f"name = {json.dumps(HOSTILE)}\n" + text)
    return path


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("node", "node name"),
        ("input", "input name"),
        ("op", "custom-domain op type"),
        ("model", "the record's model"),
        ("file", "the ONNX file name"),
        ("profile", "the profile name"),
    ],
)
def test_hostile_names_are_refused_at_bundle_time(case, fragment, tiny_onnx, tmp_path):
    onnx_path, profile = tmp_path / "m.onnx", "jetson-orin-nano"
    if case == "node":
        _edit(tiny_onnx, onnx_path, _rename_fp32_node)
    elif case == "input":
        _edit(tiny_onnx, onnx_path, _rename_input)
    elif case == "op":
        _edit(tiny_onnx, onnx_path, _add_custom_op)
    elif case == "model":
        _edit(tiny_onnx, onnx_path, _hostile_model)
    elif case == "file":
        onnx_path = tmp_path / f"{HOSTILE}.onnx"
        shutil.copy(tiny_onnx, onnx_path)
    else:
        shutil.copy(tiny_onnx, onnx_path)
        profile = str(_hostile_profile(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(app, ["bundle", str(onnx_path), "--profile", profile, "-o", str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no staging folder left


def test_custom_op_type_with_a_newline_cannot_end_a_comment(tiny_onnx, tmp_path):
    """The op type is shown escaped (one line), never as the raw newline that ended a comment of build.sh."""
    onnx_path = _edit(tiny_onnx, tmp_path / "m.onnx", _add_custom_op)
    result = CliRunner().invoke(
        app, ["bundle", str(onnx_path), "--profile", "jetson-orin-nano", "-o", str(tmp_path / "b")]
    )
    assert result.exit_code == 2 and "Evil\\ntouch PWNED" in result.output


@pytest.mark.parametrize("hostile", [HOSTILE, "$(touch PWNED)", "`touch PWNED`", "a b'c\"d", "--x;touch PWNED"])
def test_scripts_hand_every_value_over_as_one_word(hostile, tmp_path):
    """Behind the name check, the scripts still run nothing: each value is one quoted word, a list a bash array."""
    values = {
        "ONNX": f"{hostile}.onnx",
        "ENGINE": f"{hostile}.engine",
        "PRECISION": hostile,
        "CUDA_ARCH": "87",
        "NEEDS_PLUGINS": "no",
        "PLUGIN_OPS": hostile,
        "TRTEXEC_FLAGS": ["--fp16", f"--layerPrecisions={hostile}:fp32,b:fp32", f"--minShapes={hostile}:1x3"],
        "VITPRUNE_PRECISION": "--fp16",
    }
    (tmp_path / "build.sh").write_text(render_script(BUILD_SH, values))
    trtexec, python, _ = trtexec_standin(tmp_path)
    done = subprocess.run(
        ["bash", "./build.sh", "--trtexec"],
        cwd=tmp_path,
        env=dict(os.environ, TRTEXEC=str(trtexec), PYTHON=str(python)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("PWNED"))
    argv = json.loads((tmp_path / "trtexec-argv.json").read_text())
    assert argv == [
        f"--onnx={hostile}.onnx",
        f"--saveEngine={hostile}.engine",
        *values["TRTEXEC_FLAGS"],
        "--skipInference",
    ]


def test_every_template_holds_its_values_in_assignments_only():
    """render_script refuses a placeholder anywhere but alone on the right of NAME= (the templates pass)."""
    values = dict.fromkeys(("ONNX", "ENGINE", "PRECISION", "CUDA_ARCH", "NEEDS_PLUGINS", "PLUGIN_OPS"), "v")
    values |= {"TRTEXEC_FLAGS": ["--fp16"], "VITPRUNE_PRECISION": "--fp16", "DEVICE": "d", "BATCH": "1"}
    values |= dict.fromkeys(("MIN_BATCH", "MAX_BATCH", "WARMUP", "ITERATIONS", "PLAN_ITERATIONS"), "1")
    values |= dict.fromkeys(("RESULT_PREFIX", "RESULT_SUFFIX", "MODEL", "METHOD", "CURVES_NAME", "PLAN_PREFIX"), "x")
    for template in (BUILD_SH, PROFILE_SH, PLAN_SH):
        text = render_script(template, values)
        check = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    with pytest.raises(KeyError, match="outside a NAME=@KEY@ line"):
        render_script('echo "@ONNX@"\n', values)
    with pytest.raises(ValueError, match="control character"):
        render_script("ONNX=@ONNX@\n", {"ONNX": "a\nb"})
