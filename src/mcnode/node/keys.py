"""The validator's node key file: its Ed25519 message-signing key (the key in its peer URI,
which also signs its blocks).

Format: a small JSON document {"format": "mcnode-node-key", "version": 1,
"ed25519_private": 64 hex digits (the 32-byte seed)}. Written atomically with mode 0600
and read only when no one but the owner may read it (both by `mcnode.files`).
"""

from __future__ import annotations

import os

from mcnode.files import PrivateFileError, read_private_document, write_private_document

FORMAT = "mcnode-node-key"
VERSION = 1


class NodeKeyError(ValueError):
    """A node key file that cannot be used: unreadable, malformed, or readable by others."""


def write_node_key(path: str | os.PathLike[str], signing_private: bytes) -> None:
    """A validator's Ed25519 message-signing key (32-byte seed), atomically, mode 0600."""
    if len(signing_private) != 32:
        raise NodeKeyError("an Ed25519 private key is 32 bytes")
    write_private_document(path, FORMAT, VERSION, {"ed25519_private": signing_private.hex()})


def read_node_key(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte Ed25519 seed in `path`; `NodeKeyError` (one line) if it is not usable."""
    try:
        doc = read_private_document(path, FORMAT, VERSION)
    except PrivateFileError as e:
        raise NodeKeyError(str(e)) from e
    try:
        key = bytes.fromhex(doc["ed25519_private"])
    except (ValueError, KeyError, TypeError) as e:
        raise NodeKeyError(f"{path}: malformed key file: {e}") from e
    if len(key) != 32:
        raise NodeKeyError(f"{path}: the key is not 32 bytes")
    return key
