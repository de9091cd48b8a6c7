"""The text of a device bundle's ``build.sh``, ``profile.sh``, ``plan.sh`` and README (see :mod:`.bundle`).

Placeholders are ``@NAME@``. In the scripts they stand only alone on the right of an assignment at the top
(:func:`render_script` quotes each value with ``shlex.quote``; a list becomes a bash array), so no text read
from an ONNX, a record or a profile is ever spliced into a command. :func:`render` fills the README.
"""

from __future__ import annotations

import re
import shlex

BUILD_SH = r"""#!/usr/bin/env bash
# Build the vitprune plugin library and the TensorRT engine on this device.
#   ./build.sh              TensorRT Python API (python3 -m portable.trt_build; python3-libnvinfer on JetPack)
#   ./build.sh --trtexec    trtexec instead (/usr/src/tensorrt/bin/trtexec on JetPack)
#   ./build.sh --vitprune   'vitprune build' where vitprune is pip-installed on the device
#   --with-plugins          build libvitprune_plugins.so even when the ONNX has no plugin nodes
# Environment: PYTHON (python3), TRTEXEC, CUDA_ARCH (the profile's, DEFAULT_CUDA_ARCH below), JOBS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

# written by 'vitprune bundle': one shell word each (TRTEXEC_FLAGS an array), used only as "$NAME"
ONNX=@ONNX@
ENGINE=@ENGINE@
PRECISION=@PRECISION@
DEFAULT_CUDA_ARCH=@CUDA_ARCH@
NEEDS_PLUGINS=@NEEDS_PLUGINS@
PLUGIN_OPS=@PLUGIN_OPS@
TRTEXEC_FLAGS=(@TRTEXEC_FLAGS@)
VITPRUNE_PRECISION=@VITPRUNE_PRECISION@

MODE=python
PLUGINS="$NEEDS_PLUGINS"   # yes: the ONNX has plugin nodes (PLUGIN_OPS), so the plugin library is required
for argument in "$@"; do
  case "$argument" in
    --trtexec) MODE=trtexec ;;
    --vitprune) MODE=vitprune ;;
    --with-plugins) PLUGINS=yes ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$argument' (use --trtexec, --vitprune or --with-plugins)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
CUDA_ARCH="${CUDA_ARCH:-$DEFAULT_CUDA_ARCH}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
export PATH="/usr/local/cuda/bin:$PATH"

PLUGIN_LIB=""
if [ "$PLUGINS" = "yes" ] && [ -f plugins/CMakeLists.txt ]; then
  echo "== building the plugin library (sm_${CUDA_ARCH}) for: $PLUGIN_OPS"
  cmake -S plugins -B build/plugins -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH}"
  cmake --build build/plugins --parallel "${JOBS}"
  PLUGIN_LIB="$(find build/plugins -name 'libvitprune_plugins.so' -print -quit)"
  if [ -z "$PLUGIN_LIB" ]; then
    echo "error: the plugin build made no libvitprune_plugins.so" >&2; exit 1
  fi
  PLUGIN_LIB="$HERE/$PLUGIN_LIB"
  echo "   $PLUGIN_LIB"
elif [ "$PLUGINS" = "yes" ]; then
  echo "error: the plugin library is needed but plugins/CMakeLists.txt is missing" >&2; exit 1
else
  echo "== $ONNX has no plugin nodes: no plugin library needed (--with-plugins builds it anyway)"
fi

echo "== building $ENGINE ($MODE, $PRECISION)"
case "$MODE" in
  python)
    "$PYTHON" -m portable.trt_build --onnx "$ONNX" --settings build_settings.json --output "$ENGINE" \
      --metadata metadata.json ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
    ;;
  trtexec)
    TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
    if [ ! -x "$TRTEXEC" ]; then echo "error: trtexec not found; set TRTEXEC=/path/to/trtexec" >&2; exit 1; fi
    "$TRTEXEC" --onnx="$ONNX" --saveEngine="$ENGINE" "${TRTEXEC_FLAGS[@]}" \
      ${PLUGIN_LIB:+--staticPlugins="$PLUGIN_LIB"} --skipInference
    "$PYTHON" -m portable.engine_description --engine "$ENGINE" --onnx "$ONNX" --settings build_settings.json \
      --metadata metadata.json --built-with trtexec ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
    ;;
  vitprune)
    vitprune build "$ONNX" --profile profile.toml --output "$ENGINE" "$VITPRUNE_PRECISION" \
      ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
    ;;
esac
if [ -n "$PLUGIN_LIB" ]; then echo "$PLUGIN_LIB" > .plugin_library; else rm -f .plugin_library; fi
echo "next: ./profile.sh"
"""

PROFILE_SH = r"""#!/usr/bin/env bash
# Measure the engine with vitprune's protocol (the profile's warm-up and timed iterations, CUDA events)
# and write a vitprune.result/1 JSON under results/<device>/ (copy that folder back; see README.md).
#   ./profile.sh [BATCH]     batch size (default and accepted range: DEFAULT_BATCH, MIN_BATCH, MAX_BATCH below)
# Environment: PYTHON (python3), WARMUP, ITERATIONS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

# written by 'vitprune bundle': one shell word each, used only as "$NAME"
ENGINE=@ENGINE@
DEVICE=@DEVICE@
PRECISION=@PRECISION@
DEFAULT_BATCH=@BATCH@
MIN_BATCH=@MIN_BATCH@
MAX_BATCH=@MAX_BATCH@
DEFAULT_WARMUP=@WARMUP@
DEFAULT_ITERATIONS=@ITERATIONS@
RESULT_PREFIX=@RESULT_PREFIX@
RESULT_SUFFIX=@RESULT_SUFFIX@

BATCH="${1:-$DEFAULT_BATCH}"
PYTHON="${PYTHON:-python3}"
WARMUP="${WARMUP:-$DEFAULT_WARMUP}"
ITERATIONS="${ITERATIONS:-$DEFAULT_ITERATIONS}"
OUTPUT="results/$DEVICE/$RESULT_PREFIX${BATCH}$RESULT_SUFFIX.json"

if [ ! -f "$ENGINE" ]; then echo "error: $ENGINE does not exist; run ./build.sh first" >&2; exit 1; fi
PLUGIN_LIB=""
if [ -f .plugin_library ]; then PLUGIN_LIB="$(cat .plugin_library)"; fi

if command -v nvpmodel >/dev/null 2>&1; then
  echo "== power mode: $(nvpmodel -q 2>/dev/null | tr '\n' ' ')"
  echo "   (set it and pin the clocks first: see README.md, 'Before measuring')"
fi
"$PYTHON" -m portable.trt_measure --engine "$ENGINE" --metadata metadata.json --device "$DEVICE" \
  --precision "$PRECISION" --batch "$BATCH" --warm-up "$WARMUP" --iterations "$ITERATIONS" \
  --output "$OUTPUT" ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
"""

PLAN_SH = r"""#!/usr/bin/env bash
# Plan per-block keep counts from this device's own latency (TensorRT), calibrated on the bundle's engine.
#   ./plan.sh --speedup X          X times as fast as the unpruned model (as the curves predict it)
#   ./plan.sh --latency-ms MS      at most MS milliseconds per batch (the batch of BATCH below)
#   --remeasure                    time the curves again (cached in results/<device>/curves/)
# Builds the block parts in parts/ (python3 -m portable.trt_build), times them and the bundle's engine interleaved
# (python3 -m portable.trt_curves), plans (python3 -m portable.plan) and writes the schedule under
# results/<device>/plans/. Environment: PYTHON (python3), WARMUP, ITERATIONS, ROUNDS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

# written by 'vitprune bundle': one shell word each, used only as "$NAME"
ENGINE=@ENGINE@
DEVICE=@DEVICE@
BATCH=@BATCH@
MODEL=@MODEL@
METHOD=@METHOD@
CURVES_NAME=@CURVES_NAME@
PLAN_PREFIX=@PLAN_PREFIX@
DEFAULT_WARMUP=@WARMUP@
DEFAULT_ITERATIONS=@PLAN_ITERATIONS@

BUDGET=()
GOAL=""
REMEASURE=no
while [ "$#" -gt 0 ]; do
  case "$1" in
    --speedup|--latency-ms)
      if [ "$#" -lt 2 ] || ! [[ "$2" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        echo "error: $1 needs a positive number, e.g. $1 1.5" >&2; exit 2
      fi
      if [ -n "$GOAL" ]; then echo "error: give one budget: --speedup X or --latency-ms MS" >&2; exit 2; fi
      BUDGET=("$1" "$2")
      if [ "$1" = "--speedup" ]; then GOAL="x$2"; else GOAL="$2ms"; fi
      shift 2 ;;
    --remeasure) REMEASURE=yes; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (use --speedup X, --latency-ms MS or --remeasure)" >&2; exit 2 ;;
  esac
done
if [ -z "$GOAL" ]; then echo "error: give a budget: ./plan.sh --speedup 1.5 or ./plan.sh --latency-ms 10" >&2; exit 2; fi

PYTHON="${PYTHON:-python3}"
CURVES="results/$DEVICE/curves/$CURVES_NAME"
SCHEDULE="results/$DEVICE/plans/${PLAN_PREFIX}_${GOAL}.json"
if [ ! -f parts/parts.json ]; then
  echo "error: this bundle has no block parts; make it with 'vitprune bundle … --plan'" >&2; exit 2
fi
if [ ! -f "$ENGINE" ]; then echo "error: $ENGINE does not exist; run ./build.sh first" >&2; exit 1; fi
PLUGIN_LIB=""
if [ -f .plugin_library ]; then PLUGIN_LIB="$(cat .plugin_library)"; fi

if [ "$REMEASURE" = yes ] || [ ! -f "$CURVES" ]; then
  for ONNX in parts/*.onnx; do
    PART_ENGINE="${ONNX%.onnx}.engine"
    if [ "$REMEASURE" = yes ] || [ ! -f "$PART_ENGINE" ]; then
      echo "== building $PART_ENGINE"
      "$PYTHON" -m portable.trt_build --onnx "$ONNX" --settings "${ONNX%.onnx}.settings.json" \
        --output "$PART_ENGINE" ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
    fi
  done
  echo "== timing the block parts and $ENGINE"
  "$PYTHON" -m portable.trt_curves --parts parts/parts.json --engine "$ENGINE" --metadata metadata.json \
    --output "$CURVES" --warm-up "${WARMUP:-$DEFAULT_WARMUP}" --iterations "${ITERATIONS:-$DEFAULT_ITERATIONS}" \
    --rounds "${ROUNDS:-3}" ${PLUGIN_LIB:+--plugins "$PLUGIN_LIB"}
else
  echo "== curves measured before: $CURVES (--remeasure times them again)"
fi
echo "== planning for ${BUDGET[*]}"
"$PYTHON" -m portable.plan --problem "$CURVES" --output "$SCHEDULE" "${BUDGET[@]}"
echo "copy results/$DEVICE/ back; then e.g. vitprune export --model $MODEL --method $METHOD --schedule $SCHEDULE"
"""

README = """# vitprune bundle: @MODEL@ / @METHOD@ for @DEVICE_NAME@

Made by `vitprune bundle` on @CREATED@ from `@SOURCE_ONNX@` with profile `@PROFILE@`.
Everything needed to build and measure the engine on the device is in this folder;
vitprune itself need not be installed there.

| file | what it is |
| --- | --- |
| `@ONNX@` | the model (@ONNX_NOTE@) |
| `metadata.json` | the ONNX's pruning record: model, method, schedule, rate, keep counts, MACs, weights |
| `profile.toml` | the device profile (build and measurement settings) |
| `build_settings.json` | the TensorRT builder settings for @TENSORRT@ (@PRECISION_SOURCE@) |
| `plugins/` | the plugin sources and their CMake (`libvitprune_plugins.so`) |
| `build.sh` | builds the plugin library, then the engine `@ENGINE@` |
| `profile.sh` | measures the engine and writes `results/@DEVICE@/….json` |
| `portable/` | what the two scripts run (Python 3.10+, numpy, TensorRT; CUDA via ctypes), the same code `vitprune build` and `vitprune profile` use: `python3 -m portable.trt_build` writes `@ENGINE@.json` beside the engine, `python3 -m portable.trt_measure` times it |

Keep counts (tokens after each block): @KEEP_COUNTS@

## On the device

Requirements: @REQUIREMENTS@

1. Copy this folder to the device, e.g. `scp -r @BUNDLE_NAME@ user@device:~/`.
2. Before measuring (once per boot):
@SETUP@
3. Build: `./build.sh` (TensorRT Python API). Alternatives: `./build.sh --trtexec`,
   or `./build.sh --vitprune` where vitprune is pip-installed on the device.
   The engine is written atomically to `@ENGINE@` with `@ENGINE@.json` beside it.
4. Measure: `./profile.sh` (batch @BATCH@) or `./profile.sh 4`. It runs @WARMUP@ warm-up and
   @ITERATIONS@ timed iterations with CUDA events and prints median, p90 and images/s.
5. Copy back `results/@DEVICE@/*.json` into `results/@DEVICE@/` of the folder where you run vitprune;
   `vitprune compare results` then shows it beside your other devices (`--references` adds the project's).
@PLAN_STEP@
Where vitprune is pip-installed on the device, the same two steps run there directly:
`vitprune build @ONNX@ --profile profile.toml --output @ENGINE@` (add `--plugins LIB` for plugin
nodes), then `vitprune profile @ENGINE@ --backend trt @VITPRUNE_FP16@--device-name @DEVICE@
--warm-up @WARMUP@ --iterations @ITERATIONS@ --batch @BATCH@`.

## Device notes
@NOTES@
"""


def render(template: str, values: dict[str, str]) -> str:
    """Fill a README's ``@NAME@`` placeholders; a placeholder without a value is a bug, not a silent blank."""
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    _check_filled(text)
    return text


#: the only lines of a script template that hold a placeholder: ``NAME=@KEY@`` (a word) or ``NAME=(@KEY@)`` (an array)
_ASSIGNMENT = re.compile(r"^[A-Z_]+=(?:@([A-Z_]+)@|\(@([A-Z_]+)@\))$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def render_script(template: str, values: dict[str, str | list[str]]) -> str:
    """Fill a bash template: each value becomes one ``shlex.quote``-d word, a list one quoted word per item.

    Placeholders may stand only alone on the right of an assignment (``NAME=@KEY@``, ``NAME=(@KEY@)`` for a
    list), so no value is ever spliced into a command, a comment or a double-quoted string; the script uses
    ``"$NAME"`` / ``"${NAME[@]}"``. A value with a control character is a bug here: :mod:`.bundle_names`
    refuses such names before."""
    lines = []
    for line in template.split("\n"):
        if "@" not in line or not re.search(r"@[A-Z_]+@", line):
            lines.append(line)
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise KeyError(f"a bundle placeholder outside a NAME=@KEY@ line: {line!r}")
        key = match.group(1) or match.group(2)
        if key not in values:
            raise KeyError(f"unfilled bundle placeholder: {key}")
        value = values[key]
        items = list(value) if match.group(2) else [value]
        if match.group(1) and not isinstance(value, str):
            raise TypeError(f"bundle placeholder {key} takes one word, got {type(value).__name__}")
        for item in items:
            if _CONTROL.search(str(item)):
                raise ValueError(f"bundle value {key} holds a control character: {item!r}")
        words = " ".join(shlex.quote(str(item)) for item in items)
        lines.append(line.replace(f"@{key}@", words))
    return "\n".join(lines)


def _check_filled(text: str) -> None:
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise KeyError(f"unfilled bundle placeholders: {', '.join(left)}")
