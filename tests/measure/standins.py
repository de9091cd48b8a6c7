"""Stand-ins for ``ssh``, ``rsync`` and ``scp`` that run their commands on this machine, and a device.

``ssh HOST -- WORDS…`` joins the words with spaces and hands the string to ``sh -c`` in the fake host's
home folder, as sshd hands it to the user's shell. ``rsync`` and ``scp`` map ``HOST:PATH`` to that home.
The device's ``python3`` stands in for TensorRT (no GPU here): importing it reports 10.3.0, the engine
build writes a placeholder, and the timing writes a real ``vitprune.result/1`` through the bundle's own
``portable.results``; the block-part timing of ``plan.sh`` (``python3 -m portable.trt_curves``) runs the
bundle's own module with :data:`STEPPED_TIMER` in place of TensorRT. Environment switches: ``STANDIN_UNREACHABLE`` (ssh exits 255 as a refused
connection does), ``STANDIN_NO_TENSORRT``, ``STANDIN_FREE_KB`` (what ``df`` reports), ``STANDIN_FAIL_BATCH``
(the timing of that batch fails), ``STANDIN_LOG`` (every ssh command line is appended there),
``STANDIN_TIMING_LOG`` (every engine the stand-in timer times is appended there), ``STANDIN_COPY_LOG`` (every
rsync/scp command line is appended there; links and FIFOs are copied as they are, whatever the options), ``STANDIN_ENGINE_MS``
(the bundle's own engine's latency, default 1.0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SSH = r"""
import os, subprocess, sys
args = sys.argv[1:]
if os.environ.get("STANDIN_UNREACHABLE"):
    sys.stderr.write("ssh: connect to host jetson port 22: Connection refused\n")
    sys.exit(255)
while args and args[0].startswith("-") and args[0] != "--":
    option = args.pop(0)
    if option in ("-o", "-p", "-i", "-l", "-F", "-J"):
        args.pop(0)
host = args.pop(0)
if args and args[0] == "--":
    args.pop(0)
command = " ".join(args)
if os.environ.get("STANDIN_LOG"):
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(command + "\n")
env = dict(os.environ, PATH=os.environ["STANDIN_DEVICE_PATH"] + os.pathsep + os.environ["PATH"])
sys.exit(subprocess.call(["sh", "-c", command], cwd=os.environ["STANDIN_HOME"], env=env))
"""

COPY = r"""
import os, shutil, stat, sys
from pathlib import Path
args, tool = sys.argv[1:], os.path.basename(sys.argv[0])
if os.environ.get("STANDIN_UNREACHABLE"):
    sys.stderr.write("ssh: connect to host jetson port 22: Connection refused\n")
    sys.exit(255)
paths = []
while args:
    word = args.pop(0)
    if word in ("-e", "-o", "-P"):
        args.pop(0)
    elif not word.startswith("-"):
        paths.append(word)
def local(path):
    if ":" in path and not path.startswith("/"):
        path = path.split(":", 1)[1]
        return Path(path) if path.startswith("/") else Path(os.environ["STANDIN_HOME"]) / path
    return Path(path)
source, target = (local(p) for p in paths)
if not source.exists():
    sys.stderr.write(f"{tool}: {source}: No such file or directory\n")
    sys.exit(23 if tool == "rsync" else 1)
if os.environ.get("STANDIN_COPY_LOG"):
    with open(os.environ["STANDIN_COPY_LOG"], "a") as log:
        log.write(" ".join([tool, *sys.argv[1:]]) + "\n")
def copy(source, target):  # what a transport that keeps special files does: a FIFO arrives as a FIFO
    if stat.S_ISFIFO(os.lstat(source).st_mode):
        os.mkfifo(target)
    else:
        shutil.copy2(source, target)
if tool == "rsync" and paths[0].endswith("/"):
    shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True, copy_function=copy)
else:
    shutil.copytree(source, target / source.name, dirs_exist_ok=True, symlinks=True, copy_function=copy)
"""

#: a stand-in for timing one engine on the device: a part ``<kind>_<tokens>.engine`` costs a step every 16
#: tokens (a device that tiles), the bundle's own engine ``STANDIN_ENGINE_MS``
STEPPED_TIMER = r"""
def stepped_ms(kind, tokens):
    block = 0.05 + 0.02 * -(-tokens // 16)
    return {"block": block, "mlp": 0.4 * block, "reduce": block + 0.01}[kind]

def stand_in_timer(path, batch, warmup, iterations):
    import os, re
    name = os.path.basename(path)
    if os.environ.get("STANDIN_TIMING_LOG"):
        with open(os.environ["STANDIN_TIMING_LOG"], "a") as log:
            log.write(f"{name} {iterations}\n")
    match = re.match(r"(block|mlp|reduce)_([0-9]+)[.]engine$", name)
    ms = stepped_ms(match.group(1), int(match.group(2))) if match else float(os.environ.get("STANDIN_ENGINE_MS", "1.0"))
    return [ms * (1 + 0.001 * (i % 3)) for i in range(iterations)]
"""

#: a device ``python3`` that times with :data:`STEPPED_TIMER` and runs everything else (TensorRT builds too) as is
TIMING_PYTHON = (
    STEPPED_TIMER
    + r"""
import os, sys
args = sys.argv[1:]
if args[:2] == ["-m", "portable.trt_curves"]:
    sys.path.insert(0, os.getcwd())
    from portable import trt_curves
    sys.exit(trt_curves.main(args[2:], timer=stand_in_timer))
os.execv(sys.executable, [sys.executable, *args])
"""
)

DEVICE_PYTHON = (
    STEPPED_TIMER
    + r"""
import json, os, sys
args = sys.argv[1:]
def option(name):
    return args[args.index(name) + 1]
if args[:1] == ["-c"]:
    if "import tensorrt" in args[1]:
        if os.environ.get("STANDIN_NO_TENSORRT"):
            sys.exit(1)
        sys.stdout.write("vitprune-deploy: tensorrt=10.3.0\n")
        sys.exit(0)
if args[:2] == ["-m", "portable.trt_build"]:
    with open(option("--output"), "wb") as engine:
        engine.write(b"stand-in engine")
    print("built", option("--output"), "(stand-in TensorRT)")
    sys.exit(0)
if args[:2] == ["-m", "portable.trt_measure"]:
    batch = int(option("--batch"))
    if os.environ.get("STANDIN_FAIL_BATCH") == str(batch):
        print("error: CUDA out of memory (stand-in)", file=sys.stderr)
        sys.exit(1)
    sys.path.insert(0, os.getcwd())
    from portable.results import latency_result
    from portable.files import atomic_path
    with open(option("--metadata")) as handle:
        record = json.load(handle)
    samples = [2.0 * batch + 0.01 * i for i in range(10)]
    result = latency_result(record, samples, batch, 2, option("--device"), option("--precision"), {"stand_in": True}, "stand-in", backend="trt")
    path = option("--output")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(result))
    print(f"median {2.0 * batch:.3f} ms -> {path}")
    sys.exit(0)
if args[:2] == ["-m", "portable.trt_curves"]:
    sys.path.insert(0, os.getcwd())
    from portable import trt_curves
    sys.exit(trt_curves.main(args[2:], timer=stand_in_timer))
os.execv(sys.executable, [sys.executable, *args])
"""
)

DF = r"""
import os, sys
free = int(os.environ.get("STANDIN_FREE_KB", "50000000"))
print("Filesystem 1024-blocks Used Available Capacity Mounted on")
print(f"standin 99999999 1 {free} 1% /")
"""


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


def timing_python(path: Path) -> Path:
    """Write :data:`TIMING_PYTHON` at ``path`` (for ``PYTHON=`` of a bundle's scripts); return it."""
    _script(path, TIMING_PYTHON)
    return path


def install(root: Path, with_rsync: bool = True) -> dict[str, str]:
    """Write the stand-ins under ``root``; return the environment that puts them first on PATH."""
    local, device, home = root / "bin", root / "device-bin", root / "home"
    for folder in (local, device, home):
        folder.mkdir(parents=True, exist_ok=True)
    _script(local / "ssh", SSH)
    _script(local / "scp", COPY)
    if with_rsync:
        _script(local / "rsync", COPY)
    _script(device / "python3", DEVICE_PYTHON)
    _script(device / "df", DF)
    path = os.environ["PATH"]
    if not with_rsync:  # hide a real rsync: keep only folders without one
        path = os.pathsep.join(p for p in path.split(os.pathsep) if not (Path(p) / "rsync").exists())
    return {
        "PATH": f"{local}{os.pathsep}{path}",
        "STANDIN_HOME": str(home),
        "STANDIN_DEVICE_PATH": str(device),
    }
