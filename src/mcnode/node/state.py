"""SCP restart state: our last sent message, durable before it leaves the node.

The file holds two fixed-size slots; each save writes the older slot in place (sequence
number, length, CRC-32, message) and `fdatasync`s it: one sync per message, and a save torn
by a crash leaves the other slot intact. On load the newest slot whose CRC checks wins, so
after a crash `Node.from_saved` rebuilds our votes and we never contradict what we said."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from mcnode.scp import Msg
from mcnode.scp.codec import MAX_MSG_BYTES

STATE_FILE = "scp-last-msg.bin"
_HEADER = struct.Struct(">QII")  # sequence, length, crc32 of the message
SLOT = _HEADER.size + MAX_MSG_BYTES


class ScpState:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / STATE_FILE
        new = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if new:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the file itself must survive a power cut
            finally:
                os.close(dfd)
        self._seq = max((seq for seq, _ in self._slots()), default=0)

    def close(self) -> None:
        os.close(self._fd)

    def _slots(self) -> list[tuple[int, bytes]]:
        out = []
        for i in (0, 1):
            head = os.pread(self._fd, _HEADER.size, i * SLOT)
            if len(head) < _HEADER.size:
                continue
            seq, n, crc = _HEADER.unpack(head)
            if seq == 0 or n > MAX_MSG_BYTES:
                continue
            data = os.pread(self._fd, n, i * SLOT + _HEADER.size)
            if len(data) == n and zlib.crc32(data) == crc:
                out.append((seq, data))
        return out

    def save(self, msg: Msg) -> None:
        data = msg.to_bytes()
        self._seq += 1
        record = _HEADER.pack(self._seq, len(data), zlib.crc32(data)) + data
        os.pwrite(self._fd, record, (self._seq % 2) * SLOT)
        os.fdatasync(self._fd)

    def load(self) -> Msg | None:
        """The newest intact saved message, or None."""
        for _, data in sorted(self._slots(), reverse=True):
            try:
                msg = Msg.from_bytes(data)
                msg.validate()
                return msg
            except ValueError:
                continue
        return None
