"""``portable/`` runs on a device without vitprune: copied alone, as a bundle ships it, every module imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import vitprune_export.portable as portable

MODULES = sorted(path.stem for path in Path(portable.__file__).parent.glob("*.py") if path.stem != "__init__")


def test_every_portable_module_imports_from_a_lone_copy_without_vitprune(tmp_path):
    shutil.copytree(Path(portable.__file__).parent, tmp_path / "portable", ignore=shutil.ignore_patterns("__pycache__"))
    imports = "; ".join(f"import portable.{name}" for name in MODULES)
    code = (
        "import sys; sys.modules['vitprune_export'] = None\n"  # any import of the package would now fail
        f"{imports}\n"
        "print(sorted(name for name in sys.modules if name.startswith('portable.')))"
    )
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([f"portable.{name}" for name in MODULES])
