"""The data files vitprune ships: device profiles, reference results and the plugin sources.

They live at the top of the repository (``profiles/``, ``plugins/``) and reach
the package through ``vitprune_export/data-files/``, which links to them; the
wheel carries them there as package data. Code finds them through
:mod:`importlib.resources`, so a checkout, an editable install and an installed
wheel read the same files. They are read only: nothing is ever written there
(plugin builds go to ``build/plugins`` under the working directory, results to
``results/``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_FOLDER = "data-files"


def data_path(*parts: str) -> Path:
    """A file or folder under the package's ``data-files/``."""
    return Path(str(resources.files(__package__).joinpath(DATA_FOLDER, *parts)))


def profiles_dir() -> Path:
    """The shipped device profiles (``<name>.toml``)."""
    return data_path("profiles")


def reference_results_dir() -> Path:
    """Results measured by the project, shipped for comparison (``vitprune compare --references``)."""
    return data_path("profiles", "results")


def plugin_sources_dir() -> Path:
    """The C++/CUDA plugin sources with their CMake files."""
    return data_path("plugins")
