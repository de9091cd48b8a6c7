"""Atomic writes reach the disk: the new file's data is synced before the rename, its folder after it."""

from __future__ import annotations

import os
from pathlib import Path

from vitprune_export.files import atomic_write_text
from vitprune_export.portable import files


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        kind = "folder" if target.is_dir() else "file"
        events.append((f"fsync {kind}", target.name if kind == "file" else str(target)))
        real_fsync(descriptor)

    def replace(source, destination) -> None:
        events.append(("replace", Path(destination).name))
        real_replace(source, destination)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    target = tmp_path / "out" / "result.json"
    atomic_write_text(target, '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync file", "replace", "fsync folder"], events
    assert events[0][1].startswith(".result.json.")  # the temporary file, before it takes the name
    assert events[2][1] == str(target.parent)


def test_a_failed_write_syncs_nothing_and_leaves_no_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(files.os, "fsync", lambda descriptor: calls.append(descriptor))
    target = tmp_path / "result.json"
    try:
        with files.atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert not calls and list(tmp_path.iterdir()) == []
