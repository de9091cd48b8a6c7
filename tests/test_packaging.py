"""The wheel carries what a non-editable install needs: the device profiles with the shipped reference results
and the plugin sources with their CMake files, at the place the package looks for them."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = "vitprune_export/data-files"


def tracked(folder: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("needs a git checkout to list the tracked files")
    return [line for line in listed.stdout.splitlines() if line]


def copy_of_the_checkout(target: Path) -> Path:
    """The tracked and untracked-but-not-ignored files (symlinks kept), so the build writes nothing into the checkout."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("needs a git checkout to list the tracked files")
    archive = target.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        for name in files.stdout.splitlines():
            if (ROOT / name).exists() or (ROOT / name).is_symlink():
                tar.add(ROOT / name, arcname=name, recursive=False)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="tar")
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = copy_of_the_checkout(tmp_path_factory.mktemp("checkout"))
    folder = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(folder), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = folder.glob("vitprune-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_ships_profiles_reference_results_and_plugin_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles, plugins = tracked("profiles"), tracked("plugins")
    assert any(name.endswith(".toml") for name in profiles) and any("results/" in name for name in profiles)
    assert any(name.endswith("CMakeLists.txt") for name in plugins) and any(name.endswith(".cu") for name in plugins)
    missing = [name for name in profiles + plugins if f"{DATA}/{name}" not in names]
    assert missing == []
    assert not [name for name in names if name.startswith(f"{DATA}/plugins/build")]
    assert "vitprune_export/portable/trt_build.py" in names and "vitprune_export/resources.py" in names


@pytest.mark.slow
def test_an_unpacked_wheel_finds_its_data_through_importlib_resources(wheel, tmp_path):
    """The installed layout (the wheel unpacked, nothing of the checkout on the path) lists the shipped profiles,
    reads a reference result and finds the plugin CMake file."""
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import vitprune_export, json; from vitprune_export import resources; "
        "from vitprune_export.tensorrt.profiles import list_profiles; "
        "print(vitprune_export.__file__); print(sorted(list_profiles())); "
        "print((resources.plugin_sources_dir() / 'CMakeLists.txt').is_file()); "
        "print(len(list(resources.reference_results_dir().rglob('*.json'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    where, profiles, cmake, results = done.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site"))
    assert eval(profiles) == sorted(Path(name).stem for name in tracked("profiles") if name.endswith(".toml"))
    assert cmake == "True"
    assert int(results) == len([name for name in tracked("profiles/results") if name.endswith(".json")]) > 0
