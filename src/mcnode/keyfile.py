"""Account key files on disk: the one place account secrets touch the file system.

Format: a small JSON document {"format": "mcnode-account-key", "version": 1,
"view_private": hex, "spend_private": hex, "address": printable address}. Files are
written atomically (temporary file in the same directory, fsync, rename, fsync of the
directory) with mode 0600, and refused on read when group or others may read them.
`transaction/` stays free of I/O; this module only moves its bytes.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mcnode.crypto import Scalar
from mcnode.transaction.account import AccountKey

FORMAT = "mcnode-account-key"
VERSION = 1
#: Key files are tiny; anything bigger is not one.
MAX_KEY_FILE_BYTES = 4096


class KeyFileError(ValueError):
    """A key file that cannot be used: unreadable, malformed, or readable by others."""


def write_account_key(path: str | os.PathLike[str], account: AccountKey) -> None:
    """Write `account` to `path` atomically with mode 0600 (replacing any file there)."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "view_private": account.view_private.to_bytes().hex(),
        "spend_private": account.spend_private.to_bytes().hex(),
        "address": account.default_address.to_string(),
    }
    _write_atomic(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def _read_private_file(p: Path) -> bytes:
    """A secret file's bytes, refused if others may read it or it is too big to be one."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise KeyFileError(f"{p}: cannot open: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{p}: mode {stat.S_IMODE(mode):o} lets others read it; chmod 600")
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{p}: too large to be a key file")
    return data


def read_account_key(path: str | os.PathLike[str]) -> AccountKey:
    p = Path(path)
    data = _read_private_file(p)
    try:
        doc = json.loads(data)
        if doc["format"] != FORMAT or doc["version"] != VERSION:
            raise KeyFileError(f"{p}: not a version {VERSION} {FORMAT} file")
        return AccountKey(
            Scalar.from_bytes(bytes.fromhex(doc["view_private"])),
            Scalar.from_bytes(bytes.fromhex(doc["spend_private"])),
        )
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, KeyFileError):
            raise
        raise KeyFileError(f"{p}: malformed key file: {e}") from e


NODE_FORMAT = "mcnode-node-key"


def write_node_key(path: str | os.PathLike[str], signing_private: bytes) -> None:
    """A validator's Ed25519 message-signing key (32-byte seed), atomically, mode 0600."""
    if len(signing_private) != 32:
        raise KeyFileError("an Ed25519 private key is 32 bytes")
    doc = {"format": NODE_FORMAT, "version": VERSION, "ed25519_private": signing_private.hex()}
    _write_atomic(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def read_node_key(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    data = _read_private_file(p)
    try:
        doc = json.loads(data)
        if doc["format"] != NODE_FORMAT or doc["version"] != VERSION:
            raise KeyFileError(f"{p}: not a version {VERSION} {NODE_FORMAT} file")
        key = bytes.fromhex(doc["ed25519_private"])
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, KeyFileError):
            raise
        raise KeyFileError(f"{p}: malformed key file: {e}") from e
    if len(key) != 32:
        raise KeyFileError(f"{p}: the key is not 32 bytes")
    return key


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
