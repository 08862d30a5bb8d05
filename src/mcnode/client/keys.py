"""Account key files: the one place a wallet's secrets touch the file system.

Format: a small JSON document {"format": "mcnode-account-key", "version": 1,
"view_private": hex, "spend_private": hex, "address": printable address}. Written
atomically with mode 0600 and read only when no one but the owner may read it (both by
`mcnode.files`). `transaction/` stays free of I/O; this module only moves its bytes.
"""

from __future__ import annotations

import os

from mcnode.crypto import Scalar
from mcnode.files import PrivateFileError, read_private_document, write_private_document
from mcnode.transaction.account import AccountKey

FORMAT = "mcnode-account-key"
VERSION = 1


class KeyFileError(ValueError):
    """An account key file that cannot be used: unreadable, malformed, or readable by others."""


def write_account_key(path: str | os.PathLike[str], account: AccountKey) -> None:
    """Write `account` to `path` atomically with mode 0600 (replacing any file there)."""
    fields = {
        "view_private": account.view_private.to_bytes().hex(),
        "spend_private": account.spend_private.to_bytes().hex(),
        "address": account.default_address.to_string(),
    }
    write_private_document(path, FORMAT, VERSION, fields)


def read_account_key(path: str | os.PathLike[str]) -> AccountKey:
    """The account in `path`; `KeyFileError` (one line naming the file) if it is not usable."""
    try:
        doc = read_private_document(path, FORMAT, VERSION)
    except PrivateFileError as e:
        raise KeyFileError(str(e)) from e
    try:
        return AccountKey(
            Scalar.from_bytes(bytes.fromhex(doc["view_private"])),
            Scalar.from_bytes(bytes.fromhex(doc["spend_private"])),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise KeyFileError(f"{path}: malformed key file: {e}") from e
