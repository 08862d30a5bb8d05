"""Signed consensus messages on the wire: what a peer may believe about who said what.

A message is `scp.Msg` bytes plus the id of the block it builds on (slot - 1), signed with
the sender's Ed25519 message-signing key. A receiver accepts it only if the signer is a
configured peer, the signature verifies, and the SCP sender id is that peer's name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mcnode.crypto.signing import ed25519_public, ed25519_sign, ed25519_verify
from mcnode.scp import Msg
from mcnode.wire import consensus_pb2 as pb

DOMAIN = b"mcnode-consensus-v1"


#: The results of `receive` that end a peer's stream (and refuse it for a while).
FORGERY = (pb.PEER_BAD_SIGNATURE,)


class BadConsensusMsg(ValueError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def dedup_key(wire: pb.ConsensusMsg) -> bytes:
    """Identity of a signed message, computed before any verification: copies with the same
    signed bytes are the same message (a forged copy would need the same signature).

    BLAKE2b from Python's own `_blake2`, not SHA-256 from OpenSSL: the key is only ever
    held in memory, and with caches cold from the other processes on the cores, as a
    validator's are, OpenSSL's hash costs ~20-50 us a message against ~13-34 us (~25 per
    slot)."""
    h = hashlib.blake2b(digest_size=32)
    for part in (wire.scp_msg, wire.prev_block_id, wire.signer, wire.signature):
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    return h.digest()


def _signed_bytes(prev_block_id: bytes, scp_msg: bytes) -> bytes:
    return DOMAIN + len(prev_block_id).to_bytes(2, "little") + prev_block_id + scp_msg


def sign_msg(
    msg: Msg, prev_block_id: bytes, private_key: bytes, sender: str = ""
) -> pb.ConsensusMsg:
    raw = msg.to_bytes()
    return pb.ConsensusMsg(
        scp_msg=raw,
        prev_block_id=prev_block_id,
        signer=ed25519_public(private_key),
        signature=ed25519_sign(private_key, _signed_bytes(prev_block_id, raw)),
        relayed_by=sender,
    )


@dataclass(frozen=True)
class CheckedMsg:
    msg: Msg
    prev_block_id: bytes
    wire: pb.ConsensusMsg
    peer: str  # the configured peer that signed it


def check_msg(wire: pb.ConsensusMsg, signers: dict[bytes, str], max_bytes: int) -> CheckedMsg:
    """Verify and decode; raise BadConsensusMsg with a PeerResult code otherwise."""
    if wire.ByteSize() > max_bytes:
        raise BadConsensusMsg(pb.PEER_TOO_LARGE, "message too large")
    peer = signers.get(bytes(wire.signer))
    if peer is None:
        raise BadConsensusMsg(pb.PEER_UNKNOWN_SIGNER, "signer is not a configured peer")
    if len(wire.prev_block_id) > 64 or not ed25519_verify(
        bytes(wire.signer),
        _signed_bytes(bytes(wire.prev_block_id), bytes(wire.scp_msg)),
        bytes(wire.signature),
    ):
        raise BadConsensusMsg(pb.PEER_BAD_SIGNATURE, "bad signature")
    try:
        msg = Msg.from_bytes(bytes(wire.scp_msg))
        msg.validate()
    except ValueError as e:
        raise BadConsensusMsg(pb.PEER_MALFORMED, f"malformed SCP message: {e}") from None
    if msg.sender_id != peer:
        raise BadConsensusMsg(pb.PEER_WRONG_SENDER, f"signed by {peer}, claims {msg.sender_id}")
    return CheckedMsg(msg, bytes(wire.prev_block_id), wire, peer)
