"""The bad-input battery: for every command and option, the bad values a user types.

Each case asserts exit code 2, one ``error:`` line that names the input (the option or the file) and says what
to do, no traceback, and no file created or changed (neither in the working directory nor among the inputs).
Values in ``{braces}`` are the paths of the ``inputs`` fixture (tests/cli/conftest.py).
"""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import TINY_MODEL, tree_state

TINY = ("--model", TINY_MODEL, "--weights", "random")
#: words of the "what to do" half of an error line
ACTIONS = re.compile(
    r"\b(give|use|choose|pass|run|make|export|build|profile|pick|see|did you mean|leave|install|re-|"
    r"rename|remove|check|needs?|must|should|expected|try|one of|only|at least|at most|in \[|takes)",
    re.IGNORECASE,
)

INT_MIN_1 = ["0", "-1", "abc", "", "1.5", "nan"]
INT_MIN_0 = ["-1", "abc", "", "1.5"]
FRACTION = ["-0.1", "1", "1.5", "nan", "inf", "-inf", "abc", "", "1e309"]
PARITY = ["-1", "nan", "inf", "abc", ""]
SIX = 6  # blocks of the tiny model

# (id, arguments, fragment the error line must contain)
CASES: list[tuple[str, list[str], str]] = []


def case(case_id: str, arguments: list[str], fragment: str) -> None:
    CASES.append((case_id, arguments, fragment))


# ---------------------------------------------------------------- the model spec (export, flops, profile)
SPEC_COMMANDS = {
    "export": ["export", *TINY, "--method", "topk"],
    "flops": ["flops", "--model", TINY_MODEL, "--method", "topk"],
    "profile": ["profile", "--backend", "torch-cpu", *TINY, "--method", "topk"],
}
for name, base in SPEC_COMMANDS.items():
    for value in FRACTION:
        case(f"{name}-rate[{value}]", [*base, "--rate", value], "--rate")
    for value in ["", "a,b", "0.1", ",,,", "0.1;" * SIX, ",".join(["nan"] * SIX), ",".join(["-0.1"] * SIX)]:
        case(f"{name}-rates[{value}]", [*base, "--rates", value], "--rates")
    case(f"{name}-rates-all-ones", [*base, "--rates", ",".join(["0.9"] * SIX)], "patch token")
    case(f"{name}-rate-and-rates", [*base, "--rate", "0.1", "--rates", ",".join(["0.1"] * SIX)], "--rate")
    for key in ("missing", "folder", "empty", "bad_json", "text"):
        case(f"{name}-schedule[{key}]", [*base, "--schedule", f"{{{key}}}"], f"{{{key}}}")
    case(f"{name}-schedule[list_json]", [*base, "--schedule", "{list_json}"], "schedule")
    for value in ["", "topkk", "TOP-K", "nonsense"]:
        base_without_method = base[: base.index("--method")]
        case(f"{name}-method[{value}]", [*base_without_method, "--method", value, "--rate", "0.1"], "method")
    for value in ["", "deit_tiny", "vit_smal_patch16_224", "resnet"]:
        spec = [part for part in base if part != TINY_MODEL]
        spec[spec.index("--model") + 1 : spec.index("--model") + 1] = [value]
        case(f"{name}-model[{value}]", [*spec, "--rate", "0.1"], "model")
    # method options: a knob of another method, and bad values of each knob
    case(f"{name}-knob-of-another-method", [*base, "--rate", "0.1", "--tau", "1"], "--tau")
    for value in ["cls-atn", "", "CLS"]:
        case(f"{name}-score[{value}]", [*base, "--rate", "0.1", "--score", value], "--score")
    vpa = [*base[: base.index("--method")], "--method", "topk-vpa", "--rate", "0.1"]
    for value in ["-1", "0", "nan", "abc", ""]:
        case(f"{name}-tau[{value}]", [*vpa, "--tau", value], "--tau")
    bspf = [*base[: base.index("--method")], "--method", "bspf", "--rate", "0.1"]
    for value in ["0", "-1", "abc", "1.5"]:
        case(f"{name}-block-size[{value}]", [*bspf, "--block-size", value], "--block-size")
    for value in ["0", "-1", "1.5", "nan", "abc"]:
        case(f"{name}-keep-ratio[{value}]", [*bspf, "--keep-ratio", value], "--keep-ratio")
    case(f"{name}-smoothing[foo]", [*bspf, "--smoothing", "foo"], "--smoothing")
    case(f"{name}-seed[abc]", [*base[: base.index("--method")], "--method", "random", "--seed", "abc"], "--seed")
    case(f"{name}-misspelt-option", [*base, "--rat", "0.1"], "--rat")

for name in ("export", "profile"):
    base = [*SPEC_COMMANDS[name], "--rate", "0.1"]
    for key in ("missing", "folder", "empty", "text"):
        case(
            f"{name}-weights[{key}]",
            [*base[:-6], "--weights", f"{{{key}}}", "--method", "topk", "--rate", "0.1"],
            "checkpoint",
        )
    case(f"{name}-weights[word]", [*base[:-6], "--weights", "pretrained-please", "--method", "topk"], "--weights")
    for value in [*INT_MIN_1, "100000"]:
        case(f"{name}-batch[{value}]", [*base, "--batch", value], "--batch")

# ---------------------------------------------------------------- export
EXPORT = ["export", *TINY, "--method", "topk", "--rate", "0.1"]
for value in ["5", "17", "100000", "abc", ""]:
    case(f"export-opset[{value}]", [*EXPORT, "--opset", value], "--opset")
for value in PARITY:
    case(f"export-atol[{value}]", [*EXPORT, "--atol", value], "--atol")
case("export-output-folder", [*EXPORT, "-o", "{folder}"], "{folder}")
case("export-output-under-a-file", [*EXPORT, "-o", "{under_blocker}.onnx"], "{blocker}")
case("export-output-exists", [*EXPORT, "-o", "{existing}.onnx"], "--force")
case("export-output-not-onnx", [*EXPORT, "-o", "{root}/model.txt"], ".onnx")
case("export-extra-argument", [*EXPORT, "extra"], "extra")

# ---------------------------------------------------------------- ONNX inputs of rewrite, build, bundle, profile
BAD_ONNX = {
    "missing": "does not exist",
    "folder": "is a folder",
    "empty": "is empty",
    "text": "not a readable ONNX file",
    "no_graph": "no ONNX graph",
    "engine": "TensorRT engine",
    "engine_as_onnx": "TensorRT engine",
}
ONNX_COMMANDS = {
    "rewrite": lambda path: ["rewrite", path, "--to", "standard"],
    "rewrite-plugins": lambda path: ["rewrite", path, "--to", "plugins"],
    "build": lambda path: ["build", path, "--profile", "rtx-generic"],
    "build-dry-run": lambda path: ["build", path, "--profile", "rtx-generic", "--dry-run"],
    "build-dry-run-json": lambda path: ["build", path, "--profile", "jetson-orin-nano", "--dry-run", "--json"],
    "bundle": lambda path: ["bundle", path, "-o", "bundle"],
    "profile-ort": lambda path: ["profile", path, "--backend", "ort-cpu"],
    "profile-torch": lambda path: ["profile", path, "--backend", "torch-cpu"],
}
for name, make in ONNX_COMMANDS.items():
    for key, fragment in BAD_ONNX.items():
        if name.startswith("profile") and key == "engine":
            fragment = "--backend trt"
        case(f"{name}-input[{key}]", make(f"{{{key}}}"), fragment)
case(
    "rewrite-plugins-without-plugin-nodes", ["rewrite", "{onnx}", "--to", "plugins", "-o", "out.onnx"], "--plugin-nodes"
)
case("profile-torch-foreign", ["profile", "{foreign}", "--backend", "torch-cpu"], "--model")
case("profile-trt-onnx", ["profile", "{onnx}", "--backend", "trt"], "vitprune build")
case("profile-trt-missing", ["profile", "{missing}", "--backend", "trt"], "{missing}")

# ---------------------------------------------------------------- rewrite
REWRITE = ["rewrite", "{plugin_onnx}"]
for value in ["foo", "", "PLUGINS", "standrad"]:
    case(f"rewrite-to[{value}]", [*REWRITE, "--to", value], "--to")
for value in PARITY:
    case(f"rewrite-atol[{value}]", [*REWRITE, "--atol", value], "--atol")
case("rewrite-output-folder", [*REWRITE, "-o", "{folder}"], "{folder}")
case("rewrite-output-under-a-file", [*REWRITE, "-o", "{under_blocker}.onnx"], "{blocker}")
case("rewrite-output-exists", [*REWRITE, "-o", "{existing}.onnx"], "--force")
case("rewrite-output-is-input", [*REWRITE, "-o", "{plugin_onnx}"], "--output")
case("rewrite-output-not-onnx", [*REWRITE, "-o", "out.txt"], ".onnx")
case("rewrite-no-input", ["rewrite", "--to", "standard"], "IN.onnx")

# ---------------------------------------------------------------- build
BUILD = ["build", "{onnx}"]
for value in ["rtx409", "", "jetson", "RTX4090"]:
    case(f"build-profile[{value}]", [*BUILD, "--profile", value], "profile")
case("build-profile-missing-toml", [*BUILD, "--profile", "{root}/missing.toml"], "missing.toml")
case("build-profile-bad-toml", [*BUILD, "--profile", "{bad_toml}"], "{bad_toml}")
case("build-profile-folder", [*BUILD, "--profile", "{folder}"], "{folder}")
case("build-no-profile", BUILD, "--profile")
case("build-cpu-profile", [*BUILD, "--profile", "cpu"], "cpu")
for key in ("missing", "folder", "empty", "text"):
    case(f"build-plugins[{key}]", [*BUILD, "--profile", "rtx-generic", "--plugins", f"{{{key}}}"], "plugin library")
case("build-plugin-nodes-without-library", ["build", "{plugin_onnx}", "--profile", "rtx-generic"], "plugin")
case("build-output-folder", [*BUILD, "--profile", "rtx-generic", "-o", "{folder}"], "{folder}")
case("build-output-under-a-file", [*BUILD, "--profile", "rtx-generic", "-o", "{under_blocker}.engine"], "{blocker}")
case("build-output-exists", [*BUILD, "--profile", "rtx-generic", "-o", "{existing}.engine"], "--force")
case("build-timing-cache-folder", [*BUILD, "--profile", "rtx4090", "--timing-cache", "{folder}"], "--timing-cache")
case("build-fp16-and-fp32", [*BUILD, "--profile", "rtx-generic", "--fp16/--fp32"], "--fp16/--fp32")

# ---------------------------------------------------------------- bundle
BUNDLE = ["bundle", "{onnx}"]
case("bundle-output-file", [*BUNDLE, "-o", "{blocker}"], "{blocker}")
case("bundle-output-file-force", [*BUNDLE, "-o", "{blocker}", "--force"], "{blocker}")
case("bundle-output-exists", [*BUNDLE, "-o", "{folder}"], "--force")
case("bundle-output-under-a-file", [*BUNDLE, "-o", "{under_blocker}"], "{blocker}")
for value in ["foo", "", "rtx"]:
    case(f"bundle-profile[{value}]", [*BUNDLE, "--profile", value, "-o", "b"], "profile")
case("bundle-cpu-profile", [*BUNDLE, "--profile", "cpu", "-o", "b"], "cpu")
case("bundle-profile-bad-toml", [*BUNDLE, "--profile", "{bad_toml}", "-o", "b"], "{bad_toml}")
for key in ("missing", "blocker"):
    case(f"bundle-plugins-dir[{key}]", [*BUNDLE, "--plugins-dir", f"{{{key}}}", "-o", "b"], "--plugins-dir")

# ---------------------------------------------------------------- profile
PROFILE = ["profile", "{onnx}", "--backend", "ort-cpu"]
for value in ["foo", "", "trt-cpu", "ORT-CPU"]:
    case(f"profile-backend[{value}]", ["profile", "{onnx}", "--backend", value], "backend")
for option, values in (("--iterations", INT_MIN_1), ("--threads", [*INT_MIN_1, "100000"]), ("--warm-up", INT_MIN_0)):
    for value in values:
        case(f"profile{option}[{value}]", [*PROFILE, option, value], option)
for option, values in (("--iters", INT_MIN_1), ("--warmup", INT_MIN_0)):
    for value in values[:2]:
        case(f"profile{option}[{value}]", [*PROFILE, option, value], option)
case("profile-iterations-twice", [*PROFILE, "--iterations", "3", "--iters", "4"], "--iterations")
case("profile-output-folder", [*PROFILE, "-o", "{folder}"], "{folder}")
case("profile-output-under-a-file", [*PROFILE, "-o", "{under_blocker}.json"], "{blocker}")
case("profile-output-exists", [*PROFILE, "-o", "{existing}.json"], "--force")
case("profile-output-not-json", [*PROFILE, "-o", "result.txt"], ".json")
case("profile-target-and-spec", [*PROFILE, "--model", TINY_MODEL], "not both")
case("profile-cuda-without-gpu", ["profile", "--backend", "torch-cuda", *TINY, "--method", "topk"], "GPU")
case("profile-trt-without-target", ["profile", "--backend", "trt"], "TARGET")
case("profile-device-name-empty", [*PROFILE, "--device-name", ""], "--device-name")
case("profile-plugins-missing", ["profile", "{engine}", "--backend", "trt", "--plugins", "{missing}"], "")

# ---------------------------------------------------------------- compare
for key, fragment in (
    ("missing", "{missing}"),
    ("folder", "{folder}"),
    ("empty", "{empty}"),
    ("text", "{text}"),
    ("bad_json", "{bad_json}"),
    ("list_json", "{list_json}"),
    ("foreign_result", "{foreign_result}"),
):
    case(f"compare-results[{key}]", ["compare", f"{{{key}}}"], fragment)
case("compare-nothing-here", ["compare"], "results")
COMPARE = ["compare", "--references"]
for value in ["nonee", "", "topkk", "NONE"]:
    case(f"compare-baseline[{value}]", [*COMPARE, "--baseline", value], "--baseline")
for value in ["foo", "", "md", "TABLE"]:
    case(f"compare-format[{value}]", [*COMPARE, "--format", value], "--format")
for value in [*INT_MIN_1, "100000"]:
    case(f"compare-batch[{value}]", [*COMPARE, "--batch", value], "--batch")
case("compare-batch-none-left", [*COMPARE, "--batch", "7"], "--batch")
case("compare-output-with-table", [*COMPARE, "-o", "out.md"], "--output")
case("compare-output-folder", [*COMPARE, "-f", "markdown", "-o", "{folder}"], "{folder}")
case("compare-output-under-a-file", [*COMPARE, "-f", "csv", "-o", "{under_blocker}.csv"], "{blocker}")
case("compare-output-exists", [*COMPARE, "-f", "markdown", "-o", "{existing}.md"], "--force")
case("compare-plot-folder", [*COMPARE, "--plot", "{folder}"], "--plot")
case("compare-plot-not-png", [*COMPARE, "--plot", "plot.jpg"], ".png")
case("compare-plot-under-a-file", [*COMPARE, "--plot", "{under_blocker}.png"], "--plot")
case("compare-plot-exists", [*COMPARE, "--plot", "{existing}.png"], "--force")

# ---------------------------------------------------------------- methods, plugins, check, the app
for command in ("methods", "check"):
    case(f"{command}-extra-argument", [command, "extra"], "extra")
    case(f"{command}-unknown-option", [command, "--foo"], "--foo")
PLUGINS = ["plugins", "build", "--build-dir", "plugin-build"]
for value in ["foo", "0", "", "sm_87", "8.7", "-87"]:
    case(f"plugins-arch[{value}]", [*PLUGINS, "--arch", value], "--arch")
for value in INT_MIN_1:
    case(f"plugins-jobs[{value}]", [*PLUGINS, "--jobs", value], "--jobs")
case("plugins-build-dir-file", ["plugins", "build", "--build-dir", "{blocker}", "--kernels-only"], "--build-dir")
case("plugins-unknown-subcommand", ["plugins", "make"], "make")
case("unknown-command", ["exprot"], "exprot")
case("unknown-global-option", ["--verbose", "export"], "--verbose")


def _fill(text: str, inputs: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: inputs[match.group(1)], text)


@pytest.mark.parametrize("arguments, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(cli, inputs, arguments, fragment):
    arguments = [_fill(argument, inputs) for argument in arguments]
    fragment = _fill(fragment, inputs)
    before = tree_state(inputs["root"], cli.work)
    result = cli(*arguments)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, Exception), result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert all(line.startswith(("error: ", "note: ")) for line in lines), result.output
    assert fragment in errors[0], errors[0]
    assert ACTIONS.search(errors[0].split(":", 1)[1]), f"says what is wrong but not what to do: {errors[0]}"
    assert tree_state(inputs["root"], cli.work) == before, "a failed command created or changed a file"


def test_the_battery_is_large():
    assert len(CASES) >= 300, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"
