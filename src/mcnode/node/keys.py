"""The validator's node key file: its Ed25519 message-signing key (the key in its peer URI,
which also signs its blocks).

Format: a small JSON document {"format": "mcnode-node-key", "version": 1,
"ed25519_private": 64 hex digits (the 32-byte seed)}. Written atomically with mode 0600
and read only when no one but the owner may read it (both by `mcnode.files`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcnode.files import PrivateFileError, read_private_file, write_atomic

FORMAT = "mcnode-node-key"
VERSION = 1


class NodeKeyError(ValueError):
    """A node key file that cannot be used: unreadable, malformed, or readable by others."""


def write_node_key(path: str | os.PathLike[str], signing_private: bytes) -> None:
    """A validator's Ed25519 message-signing key (32-byte seed), atomically, mode 0600."""
    if len(signing_private) != 32:
        raise NodeKeyError("an Ed25519 private key is 32 bytes")
    doc = {"format": FORMAT, "version": VERSION, "ed25519_private": signing_private.hex()}
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def read_node_key(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte Ed25519 seed in `path`; `NodeKeyError` (one line) if it is not usable."""
    p = Path(path)
    try:
        data = read_private_file(p)
    except PrivateFileError as e:
        raise NodeKeyError(str(e)) from e
    try:
        doc = json.loads(data)
        if doc["format"] != FORMAT or doc["version"] != VERSION:
            raise NodeKeyError(f"{p}: not a version {VERSION} {FORMAT} file")
        key = bytes.fromhex(doc["ed25519_private"])
    except NodeKeyError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise NodeKeyError(f"{p}: malformed key file: {e}") from e
    if len(key) != 32:
        raise NodeKeyError(f"{p}: the key is not 32 bytes")
    return key
