"""SCP restart state: our last sent ballot statement, durable before it leaves the node.

The file holds two fixed-size slots; each save writes the older slot in place (sequence
number, length, CRC-32, message) and `fdatasync`s it: one sync per save, and a save torn
by a crash leaves the other slot intact. On load the newest slot whose CRC checks wins, so
after a crash `Node.from_saved` rebuilds our votes and we never contradict what we said.
`RestartState` decides which outgoing messages need a save at all (`ballot_to_save`)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from mcnode.files import fsync_dir
from mcnode.scp import Msg
from mcnode.scp.codec import MAX_MSG_BYTES
from mcnode.scp.msg import Externalize, Nominate, NominatePrepare

STATE_FILE = "scp-last-msg.bin"
_HEADER = struct.Struct("<QII")  # sequence, length, crc32 of the message (little-endian)
SLOT = _HEADER.size + MAX_MSG_BYTES


class ScpState:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / STATE_FILE
        new = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if new:
            fsync_dir(self.dir)  # the file itself must survive a power cut
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


def ballot_to_save(
    msg: Msg, blocks: int, last_saved: tuple[int, object] | None
) -> tuple[int, object] | None:
    """The (slot, ballot statement) of `msg` if it must be made durable before it is sent,
    else None.

    Only the ballot part needs it (each save is an fdatasync on the hot path): "nominate
    x" statements never contradict one another and SCP's safety rests on the ballot
    protocol alone, so a node that forgets its nomination votes after a crash only
    nominates again. So nothing is saved for a nomination-only message, nor for a
    NOMINATE+PREPARE whose PREPARE part is the one saved last, nor for an EXTERNALIZE
    whose block the ledger already holds (`blocks` > slot: a restarted node starts on the
    next slot anyway)."""
    t = msg.topic
    if isinstance(t, Nominate):
        return None
    if isinstance(t, Externalize) and blocks > msg.slot_index:
        return None
    ballot = (msg.slot_index, t.prepare if isinstance(t, NominatePrepare) else t)
    return None if ballot == last_saved else ballot


class RestartState:
    """What a restarted node needs to never contradict itself: `saved_for(slot)` at start,
    `before_send` for every message we are about to send."""

    def __init__(self, directory: Path, node_id: str) -> None:
        self.store = ScpState(directory)
        self.node_id = node_id
        self._saved: tuple[int, object] | None = None

    def saved_for(self, slot: int) -> Msg | None:
        """Our saved statement for `slot`, if we crashed in the middle of it."""
        saved = self.store.load()
        if saved is not None and saved.slot_index == slot and saved.sender_id == self.node_id:
            return saved
        return None

    def before_send(self, msg: Msg, blocks: int) -> None:
        """Make `msg` durable first if its ballot part is new (`blocks`: the ledger's)."""
        ballot = ballot_to_save(msg, blocks, self._saved)
        if ballot is not None:
            self.store.save(msg)
            self._saved = ballot

    def close(self) -> None:
        self.store.close()
