"""Files that must survive a crash, or stay private: the one atomic write of the code base.

- `write_atomic(path, data)`: after it returns, `path` holds `data` and will after a power
  cut too; before, `path` holds its old content (or nothing). A reader never sees a torn
  file: the bytes go to a temporary file in the same directory (a rename is atomic only
  within one file system), which is fsynced, renamed over `path`, and then the directory
  is fsynced (the rename itself lives in the directory).
- `fsync_dir(path)`: make a directory's entries (files created, renamed or removed in it)
  durable.
- `read_private_file(path, max_bytes=...)`: a secret's bytes, refused when group or others
  may read the file, when it is a symbolic link, or when it is larger than any such secret.
- `write_private_document` / `read_private_document`: a small secret as a JSON object
  tagged with its `format` and `version` (key files), mode 0600, refused on read unless
  the tags match.

Temporary files start with "." so that directory listings that skip hidden names (archive
listings) never see them. Nothing here knows what the bytes mean: callers turn
`PrivateFileError` into their own error type, and `OSError`s into theirs.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any

#: Unique temporary names within this process; the pid separates processes.
_temp_names = itertools.count()


class PrivateFileError(ValueError):
    """A private file that cannot be used: unreadable, too large, or readable by others."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync the directory `path`, so that entries created, renamed or removed in it survive
    a power cut (fsyncing a file does not make its name durable)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(path: Path, mode: int) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_names)}.tmp")
        try:
            return tmp, os.open(tmp, flags, mode)
        except FileExistsError:
            continue  # left by a process that crashed with our pid: take the next name


def write_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, fsync: bool = True
) -> None:
    """Replace `path` with `data`, all or nothing.

    `mode` is the new file's permission bits, narrowed by the umask as `open()` does (the
    default keeps a file private; pass 0o666 for an ordinary file). `fsync=False` keeps
    the atomic replace but skips both fsyncs: for scratch copies that a crash may lose.
    On any error the temporary file is removed and the error (an `OSError`) propagates;
    `path` is then unchanged.
    """
    p = Path(path)
    tmp, fd = _create_temp(p, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(p.parent)


#: A private file larger than this is not one of ours (key files are a few hundred bytes).
MAX_PRIVATE_FILE_BYTES = 4096


def read_private_file(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_PRIVATE_FILE_BYTES
) -> bytes:
    """The bytes of a file only its owner may read, at most `max_bytes` of them.

    Refused (`PrivateFileError`, one line naming the file) when it cannot be opened or read,
    is a symbolic link or not a regular file, lets group or others read, write or execute
    it, or is larger than `max_bytes`: a secret others could read may already be
    compromised, and the operator must hear so rather than have it used.
    """
    p = Path(path)
    # O_NONBLOCK: a FIFO where the file should be is refused below instead of hanging open()
    flags = os.O_RDONLY | os.O_NONBLOCK
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except OSError as e:
        raise PrivateFileError(f"{p}: cannot open: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{p}: not a regular file")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PrivateFileError(
                f"{p}: mode {stat.S_IMODE(st.st_mode):o} lets others read it; chmod 600"
            )
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise PrivateFileError(f"{p}: cannot read: {e.strerror}") from e
    if len(data) > max_bytes:
        raise PrivateFileError(f"{p}: too large (more than {max_bytes} bytes)")
    return data


def write_private_document(
    path: str | os.PathLike[str], fmt: str, version: int, fields: dict[str, object]
) -> None:
    """`{"format": fmt, "version": version, **fields}` as JSON, atomically, mode 0600."""
    doc = {"format": fmt, "version": version, **fields}
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def read_private_document(path: str | os.PathLike[str], fmt: str, version: int) -> dict[str, Any]:
    """The JSON object in a private file (`read_private_file`'s rules), refused
    (`PrivateFileError`, one line) unless it is JSON tagged with `fmt` and `version`."""
    data = read_private_file(path)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PrivateFileError(f"{path}: malformed key file: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("version") != version:
        raise PrivateFileError(f"{path}: not a version {version} {fmt} file")
    return doc
