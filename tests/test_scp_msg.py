"""SCP messages: the draft's sanity rules (one case per rule), the canonical binary encoding
(round trip for all five topics) and hostile bytes: whatever comes off the wire either
decodes to a message that re-encodes to exactly the same bytes or raises a ValueError
subclass, never IndexError/KeyError/TypeError/RecursionError/struct.error."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcnode.scp import (
    INFINITY,
    Ballot,
    Commit,
    Externalize,
    InvalidMsg,
    Msg,
    MsgDecodeError,
    Nominate,
    NominatePrepare,
    Prepare,
    QuorumSet,
    codec,
)
from mcnode.scp.codec import MAX_VALUES
from mcnode.scp.msg import Topic
from scp_helpers import FAST, X, Y, Z

Q = QuorumSet(2, ["v1", "v2", QuorumSet(1, ["v3", "v4"])])


def m(topic: Topic, sender: str = "v0", slot: int = 1, qset: QuorumSet = Q) -> Msg:
    return Msg(sender, slot, qset, topic)


def A(n: int) -> Ballot:
    return Ballot(n, (X,))


def B(n: int) -> Ballot:
    return Ballot(n, (Y,))


# -- sanity rules (draft section 3) --------------------------------------------------------------
SANE = [
    Nominate(frozenset({X}), frozenset()),
    Nominate(frozenset(), frozenset({X})),
    Prepare(A(1), None, None, 0, 0),
    Prepare(A(3), A(2), B(1), 0, 0),
    Prepare(A(3), Ballot(0, (Y,)), None, 0, 0),  # <0, y> is a valid prepared ballot
    Prepare(A(3), A(3), None, 2, 3),
    Prepare(A(5), A(3), None, 0, 3),
    Prepare(A(INFINITY), A(INFINITY), None, 1, INFINITY),
    Commit(A(3), 3, 1, 2),
    Commit(A(3), 0, 3, 3),
    Externalize(A(1), 1),
    Externalize(A(1), INFINITY),
    NominatePrepare(frozenset({X}), frozenset({Y}), A(2), A(1), None, 0, 1),
    Prepare(Ballot(1, (Y, X, Z)), None, None, 0, 0),  # composite values keep their order
]


@pytest.mark.parametrize("topic", SANE, ids=lambda t: repr(t)[:60])
def test_sane_messages_validate(topic: Topic) -> None:
    m(topic).validate()


INSANE: list[tuple[str, Msg]] = [
    # envelope
    ("empty sender", Msg("", 1, Q, Nominate(frozenset({X}), frozenset()))),
    ("slot 0", m(Nominate(frozenset({X}), frozenset()), slot=0)),
    ("slot 2**64", m(Nominate(frozenset({X}), frozenset()), slot=2**64)),
    ("bad qset threshold", m(Prepare(A(1), None, None, 0, 0), qset=QuorumSet(0, ["a"]))),
    ("qset above count", m(Prepare(A(1), None, None, 0, 0), qset=QuorumSet(3, ["a", "b"]))),
    ("qset duplicate", m(Prepare(A(1), None, None, 0, 0), qset=QuorumSet(1, ["a", "a"]))),
    ("unknown topic", m("not a topic")),  # type: ignore[arg-type]
    # NOMINATE
    ("nominate empty", m(Nominate(frozenset(), frozenset()))),
    # PREPARE
    ("prepare ballot counter 0", m(Prepare(A(0), None, None, 0, 0))),
    ("prepare counter above infinity", m(Prepare(A(INFINITY + 1), None, None, 0, 0))),
    ("prepare ballot no values", m(Prepare(Ballot(1, ()), None, None, 0, 0))),
    ("prepare ballot duplicate values", m(Prepare(Ballot(1, (X, X)), None, None, 0, 0))),
    ("prepared no values", m(Prepare(A(2), Ballot(1, ()), None, 0, 0))),
    ("prepared negative", m(Prepare(A(2), A(-1), None, 0, 0))),
    ("p' without p", m(Prepare(A(2), None, B(1), 0, 0))),
    ("p' compatible with p", m(Prepare(A(3), A(2), A(1), 0, 0))),
    ("p' above p", m(Prepare(A(3), A(1), B(2), 0, 0))),
    ("p' equal counter but above p", m(Prepare(B(3), A(2), B(2), 0, 0))),
    ("h without p", m(Prepare(A(3), None, None, 0, 2))),
    ("h above p", m(Prepare(A(3), A(1), None, 0, 2))),
    ("h above b", m(Prepare(A(2), A(3), None, 0, 3))),
    ("c without h", m(Prepare(A(3), A(3), None, 1, 0))),
    ("c above h", m(Prepare(A(3), A(3), None, 3, 2))),
    ("c negative", m(Prepare(A(3), A(3), None, -1, 2))),
    ("h negative", m(Prepare(A(3), A(3), None, 0, -1))),
    ("h above infinity", m(Prepare(A(3), A(3), None, 0, INFINITY + 1))),
    # COMMIT
    ("commit c 0", m(Commit(A(3), 3, 0, 2))),
    ("commit c above h", m(Commit(A(3), 3, 3, 2))),
    ("commit h above b", m(Commit(A(3), 3, 1, 4))),
    ("commit ballot 0", m(Commit(A(0), 0, 0, 0))),
    ("commit prepared negative", m(Commit(A(3), -1, 1, 2))),
    ("commit prepared above infinity", m(Commit(A(3), INFINITY + 1, 1, 2))),
    # EXTERNALIZE
    ("externalize commit above h", m(Externalize(A(3), 2))),
    ("externalize commit 0", m(Externalize(A(0), 0))),
    ("externalize no values", m(Externalize(Ballot(1, ()), 1))),
    # NOMINATE-PREPARE: both halves are checked
    (
        "nominate-prepare empty nomination",
        m(NominatePrepare(frozenset(), frozenset(), A(1), None, None, 0, 0)),
    ),
    (
        "nominate-prepare bad prepare",
        m(NominatePrepare(frozenset({X}), frozenset(), A(1), None, B(1), 0, 0)),
    ),
]


@pytest.mark.parametrize(("rule", "bad"), INSANE, ids=[r for r, _ in INSANE])
def test_insane_messages_rejected(rule: str, bad: Msg) -> None:
    with pytest.raises(InvalidMsg):
        bad.validate()


def test_invalid_msg_is_value_error() -> None:
    assert issubclass(InvalidMsg, ValueError)
    assert issubclass(MsgDecodeError, ValueError)


def test_ballot_order_and_compatibility() -> None:
    assert A(1) < B(1) < A(2)
    assert A(1).less_and_compatible(A(2))
    assert not A(2).less_and_compatible(A(1))
    assert A(1).less_and_incompatible(B(1))
    assert not B(1).less_and_incompatible(A(1))
    assert NominatePrepare(frozenset({X}), frozenset(), A(2), A(1), None, 0, 1).prepare == (
        Prepare(A(2), A(1), None, 0, 1)
    )


# -- encoding: strategies -----------------------------------------------------------------------
node_ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda s: 1 <= len(s.encode()) <= 256
)
values = st.binary(min_size=0, max_size=12)
value_sets = st.frozensets(values, max_size=4)
counters = st.integers(0, INFINITY)


@st.composite
def ballots(draw: st.DrawFn, min_n: int = 0) -> Ballot:
    vs = draw(st.lists(values, min_size=1, max_size=3, unique=True))
    return Ballot(draw(st.integers(min_n, INFINITY)), tuple(vs))


def qsets(depth: int = 0) -> st.SearchStrategy[QuorumSet]:
    members: st.SearchStrategy[str | QuorumSet] = (
        node_ids if depth >= 4 else st.one_of(node_ids, st.deferred(lambda: qsets(depth + 1)))
    )
    return st.builds(
        QuorumSet,
        st.integers(0, 2**32 - 1),
        st.lists(members, max_size=3 if depth < 2 else 1),
    )


opt_ballots = st.none() | ballots()
topics = st.one_of(
    st.builds(Nominate, value_sets, value_sets),
    st.builds(
        NominatePrepare,
        value_sets,
        value_sets,
        ballots(),
        opt_ballots,
        opt_ballots,
        counters,
        counters,
    ),
    st.builds(Prepare, ballots(), opt_ballots, opt_ballots, counters, counters),
    st.builds(Commit, ballots(), counters, counters, counters),
    st.builds(Externalize, ballots(), counters),
)
msgs = st.builds(Msg, node_ids, st.integers(0, 2**64 - 1), qsets(), topics)


@FAST
@given(msgs)
def test_round_trip_all_topics(msg: Msg) -> None:
    data = msg.to_bytes()
    back = Msg.from_bytes(data)
    assert back == msg
    assert back.to_bytes() == data and dataclasses.replace(back).to_bytes() == data
    assert type(back.topic) is type(msg.topic)


@pytest.mark.parametrize("topic", SANE, ids=lambda t: repr(t)[:60])
def test_sane_messages_round_trip_and_stay_sane(topic: Topic) -> None:
    msg = m(topic)
    back = Msg.from_bytes(msg.to_bytes())
    assert back == msg
    back.validate()


def test_encoding_ignores_set_construction_order() -> None:
    a = m(Nominate(frozenset([Z, X, Y]), frozenset()))
    b = m(Nominate(frozenset([Y, Z, X]), frozenset()))
    assert a.to_bytes() == b.to_bytes()


def test_encoding_is_pinned() -> None:
    """The layout in codec.py's docstring, byte by byte, for one small message: every
    integer little-endian (mcnode.binary)."""
    msg = Msg("a", 7, QuorumSet(1, ["b"]), Externalize(Ballot(2, (b"v",)), 0x0304))
    want = (
        b"\x01"  # version
        + b"\x01\x00a"  # sender
        + b"\x07\x00\x00\x00\x00\x00\x00\x00"  # slot
        + b"\x01\x00\x00\x00\x01\x00"  # qset: threshold 1, one member
        + b"\x00"
        + b"\x01\x00b"  # a node member
        + b"\x04"  # EXTERNALIZE
        + b"\x02\x00\x00\x00"
        + b"\x01\x00\x00\x00"
        + b"\x01\x00\x00\x00v"  # commit ballot
        + b"\x04\x03\x00\x00"  # h.n
    )
    assert msg.to_bytes() == want


# -- hostile bytes -------------------------------------------------------------------------------
def decode_or_value_error(data: bytes) -> None:
    """The contract: decode canonically or raise a ValueError subclass, nothing else."""
    try:
        msg = Msg.from_bytes(data)
    except MsgDecodeError:  # the codec's ValueError subclass; anything else fails the test
        return
    # Encoded afresh (a decoded message keeps the bytes it came from as its encoding, which
    # is right only because of this property).
    assert dataclasses.replace(msg).to_bytes() == data, "accepted a non-canonical encoding"
    assert msg.to_bytes() == data


SAMPLES = [
    m(Nominate(frozenset({X, Y}), frozenset({Z}))),
    m(NominatePrepare(frozenset({X}), frozenset({Y}), A(2), A(1), B(0), 1, 1)),
    m(Prepare(A(3), B(2), A(1), 0, 0)),
    m(Commit(Ballot(4, (Y, X)), 4, 2, 3)),
    m(Externalize(A(1), INFINITY)),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x.topic).__name__)
def test_every_truncation_is_rejected(msg: Msg) -> None:
    data = msg.to_bytes()
    for i in range(len(data)):
        with pytest.raises(MsgDecodeError):
            Msg.from_bytes(data[:i])


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x.topic).__name__)
def test_trailing_bytes_rejected(msg: Msg) -> None:
    for extra in (b"\x00", b"\xff", msg.to_bytes()):
        with pytest.raises(MsgDecodeError, match="trailing"):
            Msg.from_bytes(msg.to_bytes() + extra)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x.topic).__name__)
def test_every_single_byte_mutation_decodes_canonically_or_raises(msg: Msg) -> None:
    data = msg.to_bytes()
    for i in range(len(data)):
        for delta in (1, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[i] = (mutated[i] + delta) % 256
            decode_or_value_error(bytes(mutated))


def test_random_bytes_never_crash() -> None:
    rng = random.Random(20240601)
    for _ in range(20000):
        n = rng.randrange(0, 80)
        data = bytes(rng.randrange(256) for _ in range(n))
        if rng.random() < 0.7 and data:
            data = b"\x01" + data[1:]  # get past the version byte more often
        decode_or_value_error(data)


@FAST
@given(msgs, st.data())
def test_random_splices_of_valid_encodings(msg: Msg, data: st.DataObject) -> None:
    raw = bytearray(msg.to_bytes())
    i = data.draw(st.integers(0, len(raw)))
    j = data.draw(st.integers(i, len(raw)))
    junk = data.draw(st.binary(max_size=8))
    decode_or_value_error(bytes(raw[:i] + junk + raw[j:]))


def decoded(data: bytes, *, cold: bool) -> Msg | str:
    """What the decoder makes of `data` (its error's text on a refusal), with the quorum
    set caches emptied first when `cold`."""
    if cold:
        codec._RECENT_QSETS.clear()
        codec._DECODED_QSETS.clear()
    try:
        return Msg.from_bytes(data)
    except MsgDecodeError as e:
        return f"{type(e).__name__}: {e}"


@FAST
@given(msgs, msgs, st.data())
def test_a_recently_decoded_quorum_set_changes_no_verdict(
    first: Msg, msg: Msg, data: st.DataObject
) -> None:
    # The decoder takes a quorum set whose encoding begins where a recent one's did
    # without parsing it again: the verdict on any bytes, valid, mutated or spliced, must
    # be the one a fresh parse gives, whichever sets were decoded before.
    raw = bytearray(msg.to_bytes())
    donor = first.to_bytes()
    i = data.draw(st.integers(0, len(raw)))
    j = data.draw(st.integers(i, len(raw)))
    k = data.draw(st.integers(0, len(donor)))
    variants = [bytes(raw), bytes(raw[:i] + donor[k:]), bytes(raw[:i] + raw[j:])]
    if raw:
        flipped = bytearray(raw)
        flipped[i % len(raw)] ^= data.draw(st.integers(1, 255))
        variants.append(bytes(flipped))
    for variant in variants:
        expected = decoded(variant, cold=True)
        Msg.from_bytes(donor)  # now `first`'s set is the most recent
        Msg.from_bytes(raw)  # and then `msg`'s
        assert decoded(variant, cold=False) == expected


@pytest.mark.parametrize("garbage", [None, "text", 12, [1, 2], object()])
def test_non_bytes_input_is_a_decode_error(garbage: object) -> None:
    with pytest.raises(MsgDecodeError):
        Msg.from_bytes(garbage)  # type: ignore[arg-type]


def header(qset_bytes: bytes) -> bytes:
    return b"\x01" + b"\x01\x00a" + (1).to_bytes(8, "little") + qset_bytes


def enc_qset(q: QuorumSet) -> bytes:
    return q.to_bytes()


def test_deeply_nested_quorum_set_is_rejected_without_recursion_error() -> None:
    inner = b"\x01\x00\x00\x00\x01\x00" + b"\x00\x01\x00z"
    for _ in range(5000):
        inner = b"\x01\x00\x00\x00\x01\x00" + b"\x01" + inner
    data = (
        header(inner)
        + b"\x04"
        + b"\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00x"
        + b"\x01\x00\x00\x00"
    )
    with pytest.raises(MsgDecodeError, match="deeper"):
        Msg.from_bytes(data)


def test_depth_four_decodes() -> None:
    q = QuorumSet(1, ["z"])
    for i in range(4):
        q = QuorumSet(1, [f"n{i}", q])
    msg = m(Externalize(A(1), 1), qset=q)
    assert Msg.from_bytes(msg.to_bytes()) == msg


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # a value set claiming 2**32-1 values
        (b"\x00" + b"\xff\xff\xff\xff", "exceed"),
        # more than MAX_VALUES values
        (b"\x00" + struct.pack("<I", MAX_VALUES + 1), "exceed"),
        # one value claiming to be 4 GiB long
        (b"\x00" + b"\x01\x00\x00\x00" + b"\xff\xff\xff\xff", "exceeds"),
        # one value of 1000 bytes that is not there
        (b"\x00" + b"\x01\x00\x00\x00" + b"\xe8\x03\x00\x00" + b"ab", "truncated"),
        # unknown topic tag
        (b"\x09", "unknown topic"),
        # ballot with no values
        (b"\x04" + b"\x01\x00\x00\x00" + b"\x00\x00\x00\x00" + b"\x01\x00\x00\x00", "no values"),
        # ballot with a duplicated value
        (
            b"\x04"
            + b"\x01\x00\x00\x00"
            + b"\x02\x00\x00\x00"
            + b"\x01\x00\x00\x00x" * 2
            + b"\x01\x00\x00\x00",
            "duplicate",
        ),
        # unsorted value set
        (
            b"\x00"
            + b"\x02\x00\x00\x00"
            + b"\x01\x00\x00\x00y"
            + b"\x01\x00\x00\x00x"
            + b"\x00\x00\x00\x00",
            "ascending",
        ),
        # duplicate value in a set (not strictly ascending)
        (
            b"\x00"
            + b"\x02\x00\x00\x00"
            + b"\x01\x00\x00\x00x"
            + b"\x01\x00\x00\x00x"
            + b"\x00\x00\x00\x00",
            "ascending",
        ),
        # optional ballot with a bad tag
        (
            b"\x02" + b"\x01\x00\x00\x00" + b"\x01\x00\x00\x00\x01\x00\x00\x00x" + b"\x02",
            "optional",
        ),
    ],
)
def test_hostile_bodies(body: bytes, fragment: str) -> None:
    data = header(enc_qset(QuorumSet(1, ["b"]))) + body
    with pytest.raises(MsgDecodeError, match=fragment):
        Msg.from_bytes(data)


@pytest.mark.parametrize(
    ("qset_bytes", "fragment"),
    [
        (b"\x01\x00\x00\x00" + b"\xff\xff", "members"),  # 65535 members claimed
        (b"\x01\x00\x00\x00\x01\x00" + b"\x07", "member tag"),
        (b"\x01\x00\x00\x00\x01\x00" + b"\x00" + b"\x00\x00", "length 0"),
        (b"\x01\x00\x00\x00\x01\x00" + b"\x00" + b"\x01\x01" + b"a" * 257, "length 257"),
        (b"\x01\x00\x00\x00\x01\x00" + b"\x00" + b"\x02\x00\xff\xfe", "UTF-8"),
        (b"\x01\x00\x00\x00\x01\x00" + b"\x00" + b"\x03\x00\xed\xa0\x80", "UTF-8"),  # surrogate
    ],
)
def test_hostile_quorum_sets(qset_bytes: bytes, fragment: str) -> None:
    with pytest.raises(MsgDecodeError, match=fragment):
        Msg.from_bytes(header(qset_bytes) + b"\x04")


def test_more_than_1000_nodes_across_inner_sets_rejected() -> None:
    def inner(k: int, tag: str) -> bytes:
        out = struct.pack("<IH", 1, k)
        for i in range(k):
            name = f"{tag}{i}".encode()
            out += b"\x00" + struct.pack("<H", len(name)) + name
        return out

    q = struct.pack("<IH", 1, 2) + b"\x01" + inner(600, "a") + b"\x01" + inner(600, "b")
    with pytest.raises(MsgDecodeError, match="more than 1000"):
        Msg.from_bytes(header(q) + b"\x04")


def test_bad_version_and_oversized_input() -> None:
    good = SAMPLES[0].to_bytes()
    with pytest.raises(MsgDecodeError, match="version"):
        Msg.from_bytes(b"\x02" + good[1:])
    with pytest.raises(MsgDecodeError, match="exceeds"):
        Msg.from_bytes(b"\x01" + b"\x00" * (4 * 1024 * 1024 + 1))


BEYOND_CODEC = [
    ("sender of 300 bytes", Msg("x" * 300, 1, Q, Nominate(frozenset({X}), frozenset()))),
    ("sender of 70000 bytes", Msg("x" * 70_000, 1, Q, Nominate(frozenset({X}), frozenset()))),
    ("sender not encodable", Msg("\udc80", 1, Q, Nominate(frozenset({X}), frozenset()))),
    ("value of 70000 bytes", m(Nominate(frozenset({b"v" * 70_000}), frozenset()))),
    (
        "ballot of 10001 values",
        m(
            Prepare(
                Ballot(1, [i.to_bytes(2, "big") for i in range(MAX_VALUES + 1)]), None, None, 0, 0
            )
        ),
    ),
]


@pytest.mark.parametrize(("what", "msg"), BEYOND_CODEC, ids=[w for w, _ in BEYOND_CODEC])
def test_sane_messages_always_round_trip(what: str, msg: Msg) -> None:
    """A message validate() accepts must survive the wire, or validate() must refuse it."""
    try:
        msg.validate()
    except InvalidMsg:
        return
    assert Msg.from_bytes(msg.to_bytes()) == msg
