"""Copy a device bundle to a host over SSH, build and measure there, bring the results back.

What ``vitprune deploy`` runs, in order, each step a program started with an argument list (never a
local shell string):

1. a check on the host (``ssh HOST sh -c SCRIPT deploy DIR``): the folder is made, its free space read,
   and TensorRT's Python bindings imported — a full disk or a missing TensorRT is one line here;
2. the copy: ``rsync -a --protect-args`` when rsync is installed here, else ``scp -r``;
3. ``./build.sh`` and ``./profile.sh`` on the host, their output streamed; with a plan budget
   (``--plan-speedup``/``--plan-latency-ms``, for a bundle made with ``--plan``) then ``./plan.sh``, which
   measures the block curves there and writes the schedule under ``results/<device>/plans/``;
4. the host's ``results/`` copied back into the local results folder, also when a step failed, so a run
   that breaks halfway keeps what it measured; then the comparison table of the device's results.

What the host sends back is not trusted: only regular ``*.json`` files of at most :data:`MAX_RESULT_BYTES`
come back (rsync ``--no-links --no-specials --no-devices --max-size``, and each file ``lstat``-ed again here
before it is read, so a link, FIFO or device the transport let through is skipped with a note), and only
into ``results/<the bundle's device>/``: a file the host puts under another device's folder is refused.
Each file is copied on its own; one that fails is reported and the others still land. The host's output
is printed with its control characters (terminal escape sequences) removed. Every ssh, rsync and scp
runs with ``ConnectTimeout`` and ``ServerAliveInterval`` (:data:`SSH_TIMEOUTS`).

SSH runs a remote command through the remote user's shell, so the words of every remote command are
quoted one by one (:func:`shlex.quote`): a bundle named ``x; rm -rf ~`` stays a name. The remote folder
is ``REMOTE_DIR/<bundle name as a slug>``; ``REMOTE_DIR`` (relative to the remote home, or absolute) may hold
only letters, digits and ``._-/``, so paths mean the same to scp's SFTP and legacy protocols and to rsync. SSH's keys, agent and
known-hosts checking are used as they are configured; nothing here switches them off. ``--host`` is
``[user@]host``, user and host each checked on their own (:func:`check_host`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VitPruneError
from ..files import slug
from ..tensorrt.bundle_names import FILE_NAME, check_name

SAFE_REMOTE = re.compile(r"^[A-Za-z0-9._/-]+$")
#: a remote user name and a host name (or an SSH config Host, an IPv4 address): no option, no path, no space
SAFE_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
SAFE_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")
#: ssh options every connection gets: give up on an unreachable host, notice a dead one
SSH_TIMEOUTS = ("-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")
#: the largest results file fetched from a host (a latency result is a few KB, a plan's curves ~100 KB)
MAX_RESULT_BYTES = 4 * 2**20
#: what rsync fetches from the host's results/: regular *.json files, no links or special files, capped
FETCH_FILTER = (
    "--no-links",
    "--no-specials",
    "--no-devices",
    f"--max-size={MAX_RESULT_BYTES}",
    "--include=*/",
    "--include=*.json",
    "--exclude=*",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: SSH's exit status when the connection itself failed
SSH_FAILED = 255
SPACE_MARGIN_BYTES = 512 * 2**20  # the engine, its timing cache and the plugin build beside the bundle

PREFLIGHT = r"""
dir="$1"
mkdir -p "$dir" || { echo "vitprune-deploy: cannot-create"; exit 0; }
free=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
echo "vitprune-deploy: free-kb=${free:-0}"
if python3 -c 'import tensorrt, sys; sys.stdout.write("vitprune-deploy: tensorrt=" + tensorrt.__version__ + "\n")' 2>/dev/null; then :;
elif command -v trtexec >/dev/null 2>&1 || [ -x /usr/src/tensorrt/bin/trtexec ]; then echo "vitprune-deploy: tensorrt=trtexec-only";
else echo "vitprune-deploy: tensorrt=missing"; fi
"""
IN_FOLDER = 'cd "$1" && shift && exec "$@"'


@dataclass
class DeployRequest:
    bundle: Path
    host: str
    remote_dir: str = "vitprune-bundles"
    port: int | None = None
    ssh_options: list[str] = field(default_factory=list)
    build_args: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    results_root: Path = Path("results")
    copy_tool: str | None = None  # rsync | scp; default: rsync when installed
    plan_speedup: float | None = None  # run plan.sh --speedup X after profiling
    plan_latency_ms: float | None = None  # run plan.sh --latency-ms MS after profiling


@dataclass
class DeployOutcome:
    remote: str
    copy_tool: str
    tensorrt: str
    fetched: list[Path]
    failed_step: str | None = None
    error: str | None = None
    comparison: object | None = None  # measure.compare.Comparison of the device folders results landed in


def _bundle_manifest(bundle: Path) -> dict:
    manifest = bundle / "bundle.json"
    if not bundle.is_dir():
        raise VitPruneError(f"bundle {str(bundle)!r} is not a folder; make one with 'vitprune bundle'")
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise VitPruneError(f"{str(bundle)!r} has no bundle.json; it is not a folder 'vitprune bundle' wrote") from None
    except (OSError, ValueError) as error:
        raise VitPruneError(f"{str(manifest)!r} is not valid JSON ({error}); make the bundle again") from None
    if not str(data.get("schema", "")).startswith("vitprune.bundle/"):
        raise VitPruneError(f"{str(manifest)!r} is not a vitprune bundle manifest")
    return data


def printable(text: str) -> str:
    """``text`` without control characters (terminal escape sequences) other than tab and newline."""
    return _CONTROL.sub("", text)


def check_host(host: str) -> None:
    """``[user@]host``: the user and the host each a plain name (``u@-oProxyCommand=…`` is refused)."""
    user, at, name = host.rpartition("@")
    if not SAFE_HOST.fullmatch(name) or (at and not SAFE_USER.fullmatch(user)):
        raise VitPruneError(
            f"--host must be user@host or an SSH config name (letters, digits, . _ -, neither starting with '-'), "
            f"got {ascii(host)}"
        )


def _bundle_device(manifest: dict, bundle: Path) -> str:
    """The device name the bundle's profile.sh writes results under (``results/<device>/``)."""
    profile = manifest.get("profile")
    name = profile.get("name") if isinstance(profile, dict) else None
    return check_name(
        name,
        "file",
        f"the profile name in {str(bundle / 'bundle.json')!r}",
        "make the bundle again with 'vitprune bundle'",
    )


def _check_request(request: DeployRequest) -> None:
    check_host(request.host)
    if not SAFE_REMOTE.match(request.remote_dir) or request.remote_dir.startswith("-"):
        raise VitPruneError(
            f"--remote-dir {request.remote_dir!r} may hold only letters, digits and . _ - /; give a path relative to "
            "the remote home folder, or an absolute one"
        )
    if request.copy_tool not in (None, "rsync", "scp"):
        raise VitPruneError(f"--copy must be rsync or scp, not {request.copy_tool!r}")
    for batch in request.batches:
        if batch < 1:
            raise VitPruneError(f"--batch must be ≥ 1, got {batch}")
    if request.plan_speedup is not None and request.plan_latency_ms is not None:
        raise VitPruneError("give one plan budget: --plan-speedup X or --plan-latency-ms MS")
    if request.plan_speedup is not None and not (math.isfinite(request.plan_speedup) and request.plan_speedup >= 1):
        raise VitPruneError(
            f"--plan-speedup must be ≥ 1 (1.5 = one and a half times as fast), got {request.plan_speedup!r}"
        )
    if request.plan_latency_ms is not None and not (
        math.isfinite(request.plan_latency_ms) and request.plan_latency_ms > 0
    ):
        raise VitPruneError(
            f"--plan-latency-ms must be a positive number of milliseconds, got {request.plan_latency_ms!r}"
        )


def _decimal(value: float) -> str:
    """``value`` as plain decimal digits (``plan.sh`` accepts no exponent): 1.5 → ``1.5``, 8.0 → ``8``."""
    return format(value, ".6f").rstrip("0").rstrip(".")


def plan_step(request: DeployRequest, manifest: dict) -> list[str] | None:
    """``./plan.sh`` with the budget, or None without one; a bundle made without ``--plan`` cannot plan."""
    if request.plan_speedup is None and request.plan_latency_ms is None:
        return None
    if not manifest.get("plan_points"):
        raise VitPruneError(
            f"bundle {str(request.bundle)!r} has no block parts to plan with; make it again with 'vitprune bundle … --plan'"
        )
    if request.plan_speedup is not None:
        return ["./plan.sh", "--speedup", _decimal(request.plan_speedup)]
    return ["./plan.sh", "--latency-ms", _decimal(request.plan_latency_ms)]


def _ssh(request: DeployRequest) -> list[str]:
    command = ["ssh", "-o", "BatchMode=yes", *SSH_TIMEOUTS]  # no password prompt hidden behind streamed output
    if request.port:
        command += ["-p", str(request.port)]
    return [*command, *request.ssh_options, request.host, "--"]


def remote_command(script: str, *args: str) -> str:
    """The one string SSH hands the remote shell: ``sh -c SCRIPT deploy ARGS…``, every word quoted."""
    return " ".join(shlex.quote(word) for word in ("sh", "-c", script, "vitprune-deploy", *args))


def _ssh_error(request: DeployRequest, stderr: str) -> VitPruneError:
    lines = [line for line in printable(stderr).strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "no message"
    return VitPruneError(
        f"cannot reach {request.host} over SSH ({reason}); check 'ssh {request.host}' works without a password "
        "prompt (keys or agent) and the host key is known"
    )


def _run(command: list[str], say: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run ``command``; stream its output line by line through ``say`` (or capture it); return code and stderr."""
    if say is None:
        done = subprocess.run(command, capture_output=True, text=True, check=False, errors="replace")
        return done.returncode, printable(done.stdout + "\n" + done.stderr)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace"
    )
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = printable(line.rstrip("\n"))
        say(line)
        tail = [*tail[-20:], line + "\n"]
    return process.wait(), "".join(tail)


def _full_disk(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def preflight(request: DeployRequest, remote: str, needed: int) -> str:
    """Make the remote folder; fail in one line on a full disk or a host without TensorRT; return its version."""
    code, text = _run([*_ssh(request), remote_command(PREFLIGHT, remote)])
    if code == SSH_FAILED:
        raise _ssh_error(request, text)
    facts = dict(re.findall(r"vitprune-deploy: ([a-z-]+)=?(\S*)", text))
    if "cannot-create" in facts or code != 0:
        raise VitPruneError(f"cannot create {remote!r} on {request.host}: {text.strip().splitlines()[-1:] or code}")
    free = int(facts.get("free-kb") or 0) * 1024
    if free < needed:
        raise VitPruneError(
            f"{request.host} has {free / 2**20:.0f} MiB free under {remote!r}, the bundle needs about "
            f"{needed / 2**20:.0f} MiB; free some space or pass --remote-dir on a larger disk"
        )
    version = facts.get("tensorrt", "missing")
    if version == "missing":
        raise VitPruneError(
            f"TensorRT is not installed on {request.host} (python3 cannot import tensorrt and there is no trtexec); "
            "on a Jetson: sudo apt install nvidia-jetpack"
        )
    if version == "trtexec-only" and "--trtexec" not in request.build_args:
        raise VitPruneError(
            f"{request.host} has trtexec but python3 cannot import tensorrt; pass --build-arg=--trtexec, or install "
            "python3-libnvinfer"
        )
    return version


def _copy_tool(request: DeployRequest) -> str:
    if request.copy_tool:
        if shutil.which(request.copy_tool) is None:
            raise VitPruneError(f"--copy {request.copy_tool}: {request.copy_tool} is not installed here")
        return request.copy_tool
    if shutil.which("rsync"):
        return "rsync"
    if shutil.which("scp"):
        return "scp"
    raise VitPruneError("neither rsync nor scp is installed here; install openssh-client")


def _transport(request: DeployRequest) -> list[str]:
    port = ["-p", str(request.port)] if request.port else []
    ssh = ["ssh", "-o", "BatchMode=yes", *SSH_TIMEOUTS, *port, *request.ssh_options]
    return ["-e", " ".join(shlex.quote(word) for word in ssh)]


def _scp(request: DeployRequest, source: str, destination: str) -> list[str]:
    """``scp -r -p`` from ``source`` to ``destination``, with the request's port and ssh options."""
    port = ["-P", str(request.port)] if request.port else []
    return ["scp", "-r", "-p", "-o", "BatchMode=yes", *SSH_TIMEOUTS, *port, *request.ssh_options, source, destination]


def copy_to(request: DeployRequest, tool: str, remote: str) -> None:
    source = str(request.bundle)
    if tool == "rsync":
        command = [
            "rsync",
            "-a",
            "--protect-args",
            *_transport(request),
            source.rstrip("/") + "/",
            f"{request.host}:{remote}/",
        ]
    else:
        # scp copies the folder itself: into the parent, under its slug (scp names it after the source)
        staging = tempfile.mkdtemp(prefix="vitprune-deploy-")
        named = Path(staging) / Path(remote).name
        shutil.copytree(request.bundle, named, symlinks=True)
        command = _scp(request, str(named), f"{request.host}:{Path(remote).parent}/")
    try:
        code, text = _run(command)
    finally:
        if tool == "scp":
            shutil.rmtree(staging, ignore_errors=True)
    if code == 0:
        return
    if _full_disk(text):
        raise VitPruneError(
            f"{request.host} ran out of disk space while the bundle was copied to {remote!r}; free some"
        )
    if code == SSH_FAILED or "ssh:" in text or "Connection" in text:
        raise _ssh_error(request, text)
    raise VitPruneError(
        f"{tool} could not copy the bundle to {request.host}:{remote} ({text.strip().splitlines()[-1:]})"
    )


def fetch_results(
    request: DeployRequest, tool: str, remote: str, device: str, say: Callable[[str], None] = print
) -> list[Path]:
    """Copy the host's ``results/<device>/`` into the local ``results/<device>/``: regular ``*.json`` files of
    at most :data:`MAX_RESULT_BYTES` only, each on its own (files merged, never a folder replaced)."""
    with tempfile.TemporaryDirectory(prefix="vitprune-deploy-results-") as folder:
        landing = Path(folder) / "results"
        landing.mkdir()
        if tool == "rsync":
            command = [
                "rsync",
                "-a",
                "--protect-args",
                *FETCH_FILTER,
                *_transport(request),
                f"{request.host}:{remote}/results/",
                f"{landing}/",
            ]
        else:
            command = _scp(request, f"{request.host}:{remote}/results", folder)
        code, text = _run(command)
        if code != 0 and not any(landing.rglob("*.json")):
            if code == SSH_FAILED:
                raise _ssh_error(request, text)
            return []  # nothing measured yet
        fetched = []
        for path, reason in _landed_files(landing, device):
            shown = printable(str(path.relative_to(landing)))
            if reason:
                say(f"   skipped results/{shown} from {request.host}: {reason}")
                continue
            target = Path(request.results_root) / path.relative_to(landing)
            try:
                _copy_result(path, target)
            except (OSError, VitPruneError) as error:
                say(f"   skipped results/{shown} from {request.host}: {printable(str(error))}")
                continue
            fetched.append(target)
        return fetched


def _landed_files(landing: Path, device: str):
    """(path, why it is skipped or None) for every ``*.json`` under ``landing``, links never followed."""
    for top, folders, names in os.walk(landing, followlinks=False):
        for name in sorted(folders):
            if os.path.islink(os.path.join(top, name)):
                yield Path(top) / name, "a link, not a folder"
        for name in sorted(names):
            path = Path(top) / name
            if not name.endswith(".json"):
                continue
            parts = path.relative_to(landing).parts
            if len(parts) < 2 or parts[0] != device:
                yield path, f"not under results/{device}/, the folder of this bundle's device"
                continue
            if not all(FILE_NAME.fullmatch(part) for part in parts):
                yield path, "a name outside letters, digits and . _ + -"
                continue
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                yield path, "not a regular file (a link, FIFO or device)"
            elif info.st_size > MAX_RESULT_BYTES:
                yield path, f"{info.st_size} bytes, over the {MAX_RESULT_BYTES // 2**20} MiB a results file may have"
            else:
                yield path, None


def _copy_result(source: Path, target: Path) -> None:
    """Read ``source`` without following a link (at most the cap), write ``target`` atomically."""
    from ..files import atomic_write_bytes

    descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise VitPruneError("not a regular file")
        data = handle.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        raise VitPruneError(f"over the {MAX_RESULT_BYTES // 2**20} MiB a results file may have")
    atomic_write_bytes(target, data)


def deploy(request: DeployRequest, say: Callable[[str], None] = print) -> DeployOutcome:
    """Copy, build and measure on ``request.host``; fetch the results; raise on the first failed step
    after fetching whatever the host measured."""
    _check_request(request)
    bundle = Path(request.bundle)
    manifest = _bundle_manifest(bundle)
    planning = plan_step(request, manifest)
    device = _bundle_device(manifest, bundle)
    remote = f"{request.remote_dir.rstrip('/')}/{slug(bundle.resolve().name) or 'bundle'}"
    tool = _copy_tool(request)
    say(f"== checking {request.host}")
    version = preflight(request, request.remote_dir, _folder_bytes(bundle) + SPACE_MARGIN_BYTES)
    say(f"   TensorRT {version}; copying the bundle with {tool} to {request.host}:{remote}")
    copy_to(request, tool, remote)
    steps: list[tuple[str, list[str]]] = [("build", ["./build.sh", *request.build_args])]
    for batch in request.batches or [None]:
        steps.append(("profile", ["./profile.sh", *([str(batch)] if batch else [])]))
    if planning is not None:
        steps.append(("plan", planning))
    outcome = DeployOutcome(remote, tool, version, [])
    try:
        for name, words in steps:
            say(printable(f"== {name} on {request.host}: {shlex.join(words)}"))
            code, text = _run(
                [*_ssh(request), remote_command(IN_FOLDER, remote, *words)], say=lambda line: say(f"   {line}")
            )
            if code != 0:
                outcome.failed_step = name
                if code == SSH_FAILED:
                    outcome.error = str(_ssh_error(request, text))
                elif _full_disk(text):
                    outcome.error = f"{request.host} ran out of disk space during {name}; free some and deploy again"
                else:
                    outcome.error = f"{name} failed on {request.host} (exit {code}); its output is above"
                break
    finally:
        say(f"== fetching {request.host}:{remote}/results into {request.results_root}/")
        outcome.fetched = fetch_results(request, tool, remote, device, say)
    folders = device_results_folders(outcome.fetched, Path(request.results_root))
    if folders:
        from .compare import build_comparison
        from .results import load_results

        try:
            outcome.comparison = build_comparison(load_results(folders))
        except VitPruneError:  # only plans came back, no latency result
            outcome.comparison = None
    return outcome


def device_results_folders(fetched: Sequence[Path], root: Path) -> list[Path]:
    """The device folders the fetched results landed in (``results/<device>/``)."""
    folders = []
    for path in fetched:
        parts = path.relative_to(root).parts
        folder = root / parts[0] if len(parts) > 1 else root
        if folder not in folders:
            folders.append(folder)
    return folders


__all__ = ["DeployOutcome", "DeployRequest", "deploy", "device_results_folders", "remote_command"]
