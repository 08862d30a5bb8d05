"""`dedup_key`: a consensus message's identity for flooding, before any check."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode.node.messages import dedup_key
from mcnode.wire import consensus_pb2 as pb

Parts = tuple[bytes, bytes, bytes, bytes]
FIELDS = ("scp_msg", "prev_block_id", "signer", "signature")


def wire(parts: Parts, relayed_by: str = "") -> pb.ConsensusMsg:
    return pb.ConsensusMsg(**dict(zip(FIELDS, parts, strict=True)), relayed_by=relayed_by)


parts_st = st.tuples(*(st.binary(max_size=40) for _ in FIELDS))


@settings(max_examples=200, deadline=None)
@given(parts_st, st.text(max_size=8), st.text(max_size=8))
def test_copies_relayed_by_anyone_are_one_message(parts: Parts, a: str, b: str) -> None:
    assert dedup_key(wire(parts, a)) == dedup_key(wire(parts, b))
    assert len(dedup_key(wire(parts))) == 32


@settings(max_examples=300, deadline=None)
@given(parts_st, parts_st)
def test_different_signed_parts_are_different_messages(p: Parts, q: Parts) -> None:
    """Field boundaries count too: moving a byte from one field to the next is another
    message (each part is length-prefixed)."""
    if p != q:
        assert dedup_key(wire(p)) != dedup_key(wire(q))


def test_a_byte_moved_across_a_field_boundary_changes_the_key() -> None:
    assert dedup_key(wire((b"ab", b"c", b"", b""))) != dedup_key(wire((b"a", b"bc", b"", b"")))
