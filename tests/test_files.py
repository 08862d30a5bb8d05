"""The one atomic write and the private-file reader: content, modes, durability calls, and
nothing left behind when a write fails."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcnode import files
from mcnode.files import PrivateFileError, fsync_dir, read_private_file, write_atomic


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """Modes below are what the usual umask gives; the test must not depend on the caller's."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records what each os.fsync was called on ("file" or "dir"), then does it."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_write_atomic_writes_the_bytes_with_mode_0600_by_default(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_atomic(path, b"\x00 payload \xff")
    assert path.read_bytes() == b"\x00 payload \xff"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["secret"]


def test_write_atomic_mode_is_narrowed_by_the_umask_like_open(tmp_path: Path) -> None:
    write_atomic(tmp_path / "public", b"x", mode=0o666)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644


def test_write_atomic_replaces_an_existing_file_and_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"old, and readable by all")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["k"]


def test_write_atomic_fsyncs_the_file_then_the_directory(
    tmp_path: Path, fsynced: list[str]
) -> None:
    write_atomic(tmp_path / "k", b"data")
    assert fsynced == ["file", "dir"]


def test_write_atomic_without_fsync_still_replaces_but_syncs_nothing(
    tmp_path: Path, fsynced: list[str]
) -> None:
    write_atomic(tmp_path / "k", b"one", fsync=False)
    write_atomic(tmp_path / "k", b"two", fsync=False)
    assert (tmp_path / "k").read_bytes() == b"two"
    assert fsynced == []
    assert os.listdir(tmp_path) == ["k"]


def _failing_fsync(fd: int) -> None:
    raise OSError(5, "Input/output error")


def _failing_replace(src: object, dst: object) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(
    ("name", "fails"),
    [("fsync", _failing_fsync), ("replace", _failing_replace)],
)
def test_a_failing_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, fails: Callable[..., None]
) -> None:
    path = tmp_path / "k"
    write_atomic(path, b"old")
    monkeypatch.setattr(os, name, fails)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["k"]


def test_a_write_onto_a_directory_fails_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "d", b"x")
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == []


def test_a_stale_temp_file_of_a_crashed_process_is_stepped_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash leaves `.k.<pid>.<n>.tmp`; a later process with the same pid must not fail."""
    monkeypatch.setattr(files, "_temp_names", itertools.count())  # as in a fresh process
    for n in range(3):
        (tmp_path / f".k.{os.getpid()}.{n}.tmp").write_bytes(b"stale")
    stale = set(os.listdir(tmp_path))
    for _ in range(4):
        write_atomic(tmp_path / "k", b"fresh")
    assert (tmp_path / "k").read_bytes() == b"fresh"
    assert set(os.listdir(tmp_path)) == stale | {"k"}


def test_fsync_dir_syncs_the_directory(tmp_path: Path, fsynced: list[str]) -> None:
    fsync_dir(tmp_path)
    assert fsynced == ["dir"]
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "absent")


def test_read_private_file_returns_the_bytes(tmp_path: Path) -> None:
    write_atomic(tmp_path / "k", b"secret")
    assert read_private_file(tmp_path / "k") == b"secret"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o602, 0o610])
def test_read_private_file_refuses_what_others_may_touch(tmp_path: Path, mode: int) -> None:
    write_atomic(tmp_path / "k", b"secret")
    (tmp_path / "k").chmod(mode)
    with pytest.raises(PrivateFileError, match=f"mode {mode:o} .*chmod 600"):
        read_private_file(tmp_path / "k")


def test_read_private_file_is_bounded(tmp_path: Path) -> None:
    write_atomic(tmp_path / "k", b"x" * 100)
    assert read_private_file(tmp_path / "k", max_bytes=100) == b"x" * 100
    with pytest.raises(PrivateFileError, match="too large"):
        read_private_file(tmp_path / "k", max_bytes=99)


def test_read_private_file_refuses_missing_links_and_non_files(tmp_path: Path) -> None:
    with pytest.raises(PrivateFileError, match="cannot open"):
        read_private_file(tmp_path / "absent")
    write_atomic(tmp_path / "k", b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "k")
    with pytest.raises(PrivateFileError, match="cannot open"):
        read_private_file(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(PrivateFileError, match="not a regular file"):
        read_private_file(tmp_path / "fifo")
