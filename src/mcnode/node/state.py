"""SCP restart state: our last sent message, written before it leaves the node.

One small file, replaced atomically (write, fsync, rename, fsync the directory), so after a
crash `Node.from_saved` can rebuild our votes and we never contradict what we said."""

from __future__ import annotations

import os
from pathlib import Path

from mcnode.scp import Msg

STATE_FILE = "scp-last-msg.bin"


class ScpState:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / STATE_FILE

    def save(self, msg: Msg) -> None:
        data = msg.to_bytes()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def load(self) -> Msg | None:
        """The saved message, or None if there is none or it is unreadable (then we start
        the slot fresh: safe only because an unreadable file means we never sent it)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            msg = Msg.from_bytes(data)
            msg.validate()
        except ValueError:
            return None
        return msg
