"""Where a measurement was taken: the machine, the CPU, a Jetson's power mode and clocks, library versions.

Standard library only, so ``vitprune profile`` and a device bundle's
``trt_measure`` describe a machine the same way. Every probe returns None (or
leaves its key out) when the fact cannot be read; nothing here raises.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

#: the Orin GPU's current clock, at the places L4T releases have put it
JETSON_GPU_FREQUENCY = (
    "/sys/devices/gpu.0/devfreq/17000000.gpu/cur_freq",
    "/sys/devices/platform/17000000.gpu/devfreq/17000000.gpu/cur_freq",
    "/sys/devices/17000000.gpu/devfreq/17000000.gpu/cur_freq",
)


def read_text(path: str) -> str | None:
    """The stripped contents of a small system file, or None."""
    try:
        return Path(path).read_text(errors="replace").strip().rstrip("\x00")
    except OSError:
        return None


def run_quiet(command: list[str]) -> str | None:
    """The stdout of ``command`` when it exits 0 within 10 s, else None."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model() -> str:
    text = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count when unreadable."""
    text = read_text("/proc/cpuinfo") or ""
    pairs = set(re.findall(r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text))
    return len(pairs) or (os.cpu_count() or 1)


def jetson_info() -> dict:
    """Jetson model, L4T release, nvpmodel power mode and GPU clock, where readable ({} elsewhere)."""
    model = read_text("/proc/device-tree/model")
    release = read_text("/etc/nv_tegra_release")
    if not release and not (model and "jetson" in model.lower()):
        return {}
    info: dict = {"model": model, "l4t": release.splitlines()[0] if release else None}
    power = run_quiet(["nvpmodel", "-q"])
    if power:
        info["power_mode"] = " ".join(line.strip() for line in power.splitlines() if line.strip())
    frequency = next((value for value in map(read_text, JETSON_GPU_FREQUENCY) if value), None)
    if frequency:
        info["gpu_freq_hz"] = frequency
    return info


def package_versions(names) -> dict:
    """Installed versions of the distributions ``names`` (those not installed are left out)."""
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def describe_machine() -> dict:
    """Host, OS, Python, CPU model and cores, CPU governor and (on a Jetson) its model, L4T, power mode and clock."""
    found = {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_cores": physical_cores(),
        "cpu_logical": os.cpu_count(),
        "cpu_governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }
    jetson = jetson_info()
    if jetson:
        found["jetson"] = jetson
    return found
