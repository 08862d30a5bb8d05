"""SCP message types (draft-mazieres-dinrg-scp-05, section 3, "Message format").

Every type here is a frozen value. `Msg.validate()` applies the draft's sanity rules to a
message as received; `Msg.to_bytes()` / `Msg.from_bytes()` are the canonical encoding from
`codec.py`. Nothing here knows about node state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mcnode.scp.codec import (
    MAX_MSG_BYTES,
    MAX_VALUE_LEN,
    MAX_VALUES,
    VERSION,
    MsgDecodeError,
    MsgReader,
    MsgWriter,
)
from mcnode.scp.quorum_set import MAX_NODE_ID_LEN, NodeID, QuorumSet, QuorumSetError

Value = bytes

INFINITY = 0xFFFFFFFF
"""Ballot counter standing for "infinity" (draft "Commit message": COMMIT votes prepare
<infinity, x>). Real ballots stay below it: counters are capped (see ballot.py)."""


class InvalidMsg(ValueError):
    """A message that breaks the draft's sanity rules."""


@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A ballot (n, x): counter n, composite value x (a list of values, order significant)."""

    n: int
    values: tuple[Value, ...]
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __init__(self, n: int, values: tuple[Value, ...] | list[Value]) -> None:
        values = tuple(values)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_hash", hash((n, values)))

    def __hash__(self) -> int:  # ballots live in sets and dict keys on the hot path
        return self._hash

    def less_and_compatible(self, other: Ballot) -> bool:
        return self <= other and self.values == other.values

    def less_and_incompatible(self, other: Ballot) -> bool:
        return self <= other and self.values != other.values

    def __repr__(self) -> str:
        vals = ",".join(v[:4].hex() for v in self.values[:3])
        more = f",+{len(self.values) - 3}" if len(self.values) > 3 else ""
        return f"<{self.n},[{vals}{more}]>"


@dataclass(frozen=True, slots=True)
class Nominate:
    voted: frozenset[Value]
    accepted: frozenset[Value]


@dataclass(frozen=True, slots=True)
class Prepare:
    ballot: Ballot
    prepared: Ballot | None
    prepared_prime: Ballot | None
    c_n: int
    h_n: int


@dataclass(frozen=True, slots=True)
class Commit:
    ballot: Ballot
    prepared_n: int
    c_n: int
    h_n: int


@dataclass(frozen=True, slots=True)
class Externalize:
    commit: Ballot
    h_n: int


@dataclass(frozen=True, slots=True)
class NominatePrepare:
    """MobileCoin's combined message: nomination and PREPARE while both are running."""

    voted: frozenset[Value]
    accepted: frozenset[Value]
    ballot: Ballot
    prepared: Ballot | None
    prepared_prime: Ballot | None
    c_n: int
    h_n: int

    @property
    def nominate(self) -> Nominate:
        return Nominate(self.voted, self.accepted)

    @property
    def prepare(self) -> Prepare:
        return Prepare(self.ballot, self.prepared, self.prepared_prime, self.c_n, self.h_n)


Topic = Nominate | NominatePrepare | Prepare | Commit | Externalize
BallotTopic = Prepare | Commit | Externalize
_TAGS: dict[type, int] = {Nominate: 0, NominatePrepare: 1, Prepare: 2, Commit: 3, Externalize: 4}


def nomination_part(topic: Topic) -> Nominate | None:
    if isinstance(topic, Nominate):
        return topic
    if isinstance(topic, NominatePrepare):
        return topic.nominate
    return None


def ballot_part(topic: Topic) -> BallotTopic | None:
    if isinstance(topic, Prepare | Commit | Externalize):
        return topic
    if isinstance(topic, NominatePrepare):
        return topic.prepare
    return None


def _check_values(values: frozenset[Value] | tuple[Value, ...], what: str) -> None:
    """The codec's limits: what validates must also travel."""
    if len(values) > MAX_VALUES:
        raise InvalidMsg(f"{what}: {len(values)} values exceed {MAX_VALUES}")
    if not values:
        return
    if not set(map(type, values)) <= {bytes}:
        raise InvalidMsg(f"{what}: values must be bytes")
    longest = max(map(len, values))
    if longest > MAX_VALUE_LEN:
        raise InvalidMsg(f"{what}: a value of {longest} bytes exceeds {MAX_VALUE_LEN}")


def _check_ballot(b: Ballot, what: str, allow_zero: bool = False) -> None:
    # Counter 0 is valid only for prepared ballots (draft, "Prepare message": <0, y>).
    if b.n < (0 if allow_zero else 1) or b.n > INFINITY:
        raise InvalidMsg(f"{what} counter {b.n} out of range")
    if not b.values:
        raise InvalidMsg(f"{what} has no values")
    _check_values(b.values, what)
    if len(set(b.values)) != len(b.values):
        raise InvalidMsg(f"{what} has duplicate values")


def _check_counter(n: int, what: str) -> None:
    if not 0 <= n <= INFINITY:
        raise InvalidMsg(f"{what} {n} out of range")


def validate_nominate(t: Nominate) -> None:
    if not t.voted and not t.accepted:
        raise InvalidMsg("nominate with no voted and no accepted values")
    _check_values(t.voted, "voted")
    _check_values(t.accepted, "accepted")


def validate_prepare(t: Prepare) -> None:
    """Draft 3.5 PREPARE: p' < p and incompatible; c <= h <= b; h <= p."""
    _check_ballot(t.ballot, "ballot")
    _check_counter(t.c_n, "c.n")
    _check_counter(t.h_n, "h.n")
    if t.prepared is not None:
        _check_ballot(t.prepared, "prepared", allow_zero=True)
    if t.prepared_prime is not None:
        _check_ballot(t.prepared_prime, "prepared'", allow_zero=True)
        if t.prepared is None:
            raise InvalidMsg("prepared' without prepared")
        if not t.prepared_prime.less_and_incompatible(t.prepared):
            raise InvalidMsg("prepared' must be below and incompatible with prepared")
    if t.h_n and (t.prepared is None or t.h_n > t.prepared.n):
        raise InvalidMsg("h.n must not exceed prepared.n")
    if t.c_n and (t.h_n == 0 or not t.c_n <= t.h_n <= t.ballot.n):
        raise InvalidMsg("need c.n <= h.n <= ballot.n")
    if t.h_n > t.ballot.n:
        raise InvalidMsg("h.n exceeds ballot.n")


def validate_commit(t: Commit) -> None:
    """Draft 3.5 COMMIT: 0 < c.n <= h.n <= b.n."""
    _check_ballot(t.ballot, "ballot")
    _check_counter(t.prepared_n, "prepared.n")
    _check_counter(t.c_n, "c.n")
    _check_counter(t.h_n, "h.n")
    if not 0 < t.c_n <= t.h_n <= t.ballot.n:
        raise InvalidMsg("need 0 < c.n <= h.n <= ballot.n")


def validate_externalize(t: Externalize) -> None:
    """Draft 3.5 EXTERNALIZE: 0 < commit.n <= h.n."""
    _check_ballot(t.commit, "commit")
    _check_counter(t.h_n, "h.n")
    if t.commit.n > t.h_n:
        raise InvalidMsg("commit.n exceeds h.n")


@dataclass(frozen=True)
class Msg:
    """One SCP message: what `sender_id` says about `slot_index`, with its quorum set."""

    sender_id: NodeID
    slot_index: int
    quorum_set: QuorumSet
    topic: Topic

    def validate(self, check_quorum_set: bool = True) -> None:
        """Raise `InvalidMsg` unless the message is sane (draft section 3).

        `check_quorum_set=False` skips re-validating a quorum set the caller has already
        validated (an equal one from the same sender)."""
        if not isinstance(self.sender_id, str) or not self.sender_id:
            raise InvalidMsg("empty sender id")
        try:
            sender_len = len(self.sender_id.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidMsg("sender id is not valid UTF-8 text") from None
        if sender_len > MAX_NODE_ID_LEN:
            raise InvalidMsg(f"sender id longer than {MAX_NODE_ID_LEN} bytes")
        if not 1 <= self.slot_index < 2**64:
            raise InvalidMsg(f"slot index {self.slot_index} out of range")
        if check_quorum_set:
            try:
                self.quorum_set.validate()
            except QuorumSetError as e:
                raise InvalidMsg(f"bad quorum set: {e}") from None
        t = self.topic
        if isinstance(t, Nominate):
            validate_nominate(t)
        elif isinstance(t, NominatePrepare):
            validate_nominate(t.nominate)
            validate_prepare(t.prepare)
        elif isinstance(t, Prepare):
            validate_prepare(t)
        elif isinstance(t, Commit):
            validate_commit(t)
        elif isinstance(t, Externalize):
            validate_externalize(t)
        else:
            raise InvalidMsg(f"unknown topic {type(t).__name__}")
        if len(self.to_bytes()) > MAX_MSG_BYTES:
            raise InvalidMsg(f"message larger than {MAX_MSG_BYTES} bytes")

    # -- encoding -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        w = MsgWriter()
        w.u8(VERSION)
        w.str(self.sender_id)
        w.u64(self.slot_index)
        w.qset(self.quorum_set)
        t = self.topic
        w.u8(_TAGS[type(t)])
        if isinstance(t, Nominate | NominatePrepare):
            w.values(sorted(t.voted))
            w.values(sorted(t.accepted))
        if isinstance(t, Prepare | NominatePrepare):
            w.ballot(t.ballot)
            w.opt_ballot(t.prepared)
            w.opt_ballot(t.prepared_prime)
            w.u32(t.c_n)
            w.u32(t.h_n)
        elif isinstance(t, Commit):
            w.ballot(t.ballot)
            w.u32(t.prepared_n)
            w.u32(t.c_n)
            w.u32(t.h_n)
        elif isinstance(t, Externalize):
            w.ballot(t.commit)
            w.u32(t.h_n)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Msg:
        """Decode canonical bytes; raise `MsgDecodeError` (a ValueError) on anything else.

        The result is decoded, not validated: call `validate()` for the sanity rules."""
        r = MsgReader(data)
        version = r.u8()
        if version != VERSION:
            raise MsgDecodeError(f"unsupported message version {version}")
        sender = r.str()
        slot = r.u64()
        qset = r.qset()
        tag = r.u8()
        topic: Topic
        if tag in (0, 1):
            voted = frozenset(r.values())
            accepted = frozenset(r.values())
            if tag == 0:
                topic = Nominate(voted, accepted)
            else:
                b, p, pp, c_n, h_n = r.ballot(), r.opt_ballot(), r.opt_ballot(), r.u32(), r.u32()
                topic = NominatePrepare(voted, accepted, b, p, pp, c_n, h_n)
        elif tag == 2:
            topic = Prepare(r.ballot(), r.opt_ballot(), r.opt_ballot(), r.u32(), r.u32())
        elif tag == 3:
            topic = Commit(r.ballot(), r.u32(), r.u32(), r.u32())
        elif tag == 4:
            topic = Externalize(r.ballot(), r.u32())
        else:
            raise MsgDecodeError(f"unknown topic tag {tag}")
        r.finish()
        msg = cls(sender, slot, qset, topic)
        # The decoder takes canonical bytes only (sets strictly ascending, fixed widths,
        # nothing left over), so they are the message's encoding: `validate` and anyone
        # else asking for it need not encode it again.
        msg.__dict__["_encoded"] = bytes(data)
        return msg
