"""Files naming the block signers a ledger accepts (Ed25519 public keys).

Two forms, told apart by their first character:
  text   one hex key per line, `#` starts a comment (written by hand or by a script)
  JSON   a node's `<state_dir>/block-signers.json` (format `mcnode-block-signers`): its
         `expected` list is the set that node checks blocks against (its own enclave's
         signers and those of its quorum members' enclaves)
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "mcnode-block-signers"


class SignersFileError(ValueError):
    """A signers file that cannot be read as either form; the message names the place."""


def read_signers_file(path: Path) -> list[bytes]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SignersFileError(f"{path}: cannot read: {e}") from e
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT!r}")
            return [_key(k, f"{path}: expected") for k in doc["expected"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if isinstance(e, SignersFileError):
                raise
            raise SignersFileError(f"{path}: not a block-signers file: {e}") from e
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            keys.append(_key(line, f"{path}:{n}"))
    return keys


def _key(text: object, where: str) -> bytes:
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SignersFileError(f"{where}: a key must be 64 hex digits, got {text!r}")
    return raw
