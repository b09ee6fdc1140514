"""The one atomic-write helper: a failed write leaves the old output and no temporary."""

from __future__ import annotations

import os
import stat

import pytest

from napari_slideseg.io.files import atomic_path, replace_path, write_text_atomic


def test_file_written_whole_with_default_mode(tmp_path):
    out = write_text_atomic(tmp_path / "a.txt", "one")
    assert out.read_text() == "one"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_error_keeps_old_file_and_removes_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_folder_replaces_folder(tmp_path):
    target = tmp_path / "out.zarr"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


def test_failed_rename_puts_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "out.zarr"
    target.mkdir()
    (target / "old").write_text("x")
    tmp = tmp_path / ".new"
    tmp.mkdir()
    real = os.replace
    calls = []

    def flaky(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError("rename failed")
        return real(a, b)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError):
        replace_path(tmp, target)
    assert (target / "old").read_text() == "x"
