"""Byzantine behaviours for simulated nodes.

A Byzantine node runs a real `Node` (so it looks alive) and corrupts what it sends. It can
only speak as itself: in the service every message is signed, so forging another node's
messages is out of the model. Kinds:
  equivocate  different messages to different peers (conflicting values and ballots)
  invalid     its messages carry values the application rejects
  replay      re-sends old messages (earlier in the slot or earlier slots) at random
  garbage     random well-formed messages: any topic, counters, values, quorum sets
  split       colluding: tells one half of the honest nodes that value x is externalized
              and the other half that y is (the classic attack on quorum intersection)
  silent      sends nothing (a crash fault that never recovers)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mcnode.scp.msg import (
    INFINITY,
    Ballot,
    Commit,
    Externalize,
    Msg,
    Nominate,
    NominatePrepare,
    Prepare,
    Topic,
    Value,
)
from mcnode.scp.quorum_set import QuorumSet

KINDS = ("equivocate", "invalid", "replay", "garbage", "split", "silent")
INVALID_PREFIX = b"bad:"


def _subset(rng: random.Random, pool: Sequence[Value], k: int) -> tuple[Value, ...]:
    if not pool:
        return (b"v" + rng.randbytes(8),)
    k = max(1, min(k, len(pool)))
    return tuple(sorted(rng.sample(list(pool), k)))


def random_ballot(rng: random.Random, pool: Sequence[Value], n: int | None = None) -> Ballot:
    if n is None:
        n = rng.choice([1, 1, 2, 3, rng.randint(1, 50), INFINITY - 1])
    return Ballot(n, _subset(rng, pool, rng.randint(1, 4)))


def random_topic(rng: random.Random, pool: Sequence[Value]) -> Topic:
    """A random message body that passes `Msg.validate()` (well-formed, not honest)."""
    kind = rng.randrange(5)
    if kind == 0:
        return Nominate(frozenset(_subset(rng, pool, 3)), frozenset(_subset(rng, pool, 2)))
    if kind == 4:
        c = random_ballot(rng, pool)
        return Externalize(c, rng.randint(c.n, min(INFINITY, c.n + 5)))
    b = random_ballot(rng, pool)
    h_n = rng.randint(0, b.n)
    c_n = rng.randint(0, h_n) if h_n else 0
    if kind == 3:
        return Commit(b, rng.randint(h_n, b.n) if h_n else b.n, max(c_n, 1), max(h_n, 1))
    p = Ballot(rng.randint(max(h_n, 0), b.n), b.values) if rng.random() < 0.7 else None
    if p is None:
        h_n = c_n = 0
    pp = None
    if p is not None and p.n > 0 and rng.random() < 0.3:
        other = _subset(rng, pool, 2)
        cand = Ballot(p.n - 1, other)
        if other != p.values:
            pp = cand
    if kind == 1:
        nom = Nominate(frozenset(_subset(rng, pool, 2)), frozenset())
        return NominatePrepare(nom.voted, nom.accepted, b, p, pp, c_n, h_n)
    return Prepare(b, p, pp, c_n, h_n)


def random_qset(rng: random.Random, nodes: Sequence[str], me: str) -> QuorumSet:
    others = [n for n in nodes if n != me] or [me]
    members = rng.sample(others, rng.randint(1, len(others)))
    return QuorumSet(rng.randint(1, len(members)), sorted(members))


def equivocate(rng: random.Random, msg: Msg, pool: Sequence[Value]) -> Msg:
    """The same kind of statement as `msg`, but about other values."""
    alt = _subset(rng, pool, rng.randint(1, 4))
    t = msg.topic
    new: Topic
    if isinstance(t, Nominate):
        new = Nominate(frozenset(alt), frozenset())
    elif isinstance(t, NominatePrepare):
        new = NominatePrepare(
            frozenset(alt), frozenset(), Ballot(t.ballot.n, alt), None, None, 0, 0
        )
    elif isinstance(t, Prepare):
        new = Prepare(Ballot(t.ballot.n, alt), Ballot(t.ballot.n, alt), None, 0, 0)
    elif isinstance(t, Commit):
        b = Ballot(t.ballot.n, alt)
        new = Commit(b, t.prepared_n, t.c_n, t.h_n)
    else:
        new = Externalize(Ballot(t.commit.n, alt), t.h_n)
    return Msg(msg.sender_id, msg.slot_index, msg.quorum_set, new)


def poison(rng: random.Random, msg: Msg) -> Msg:
    """`msg` with a value the application rejects added to its vote."""
    bad = INVALID_PREFIX + rng.randbytes(6)
    t = msg.topic
    if isinstance(t, Nominate):
        return Msg(
            msg.sender_id, msg.slot_index, msg.quorum_set, Nominate(t.voted | {bad}, t.accepted)
        )
    b = Ballot(max(1, getattr(t, "ballot", getattr(t, "commit", None)).n), (bad,))  # type: ignore[union-attr]
    return Msg(msg.sender_id, msg.slot_index, msg.quorum_set, Prepare(b, None, None, 0, 0))


def split_target(victim: str) -> int:
    """Which half of the network a victim of the split attack is in (same for all
    colluders: a stable hash of its name)."""
    return sum(victim.encode()) % 2


def split_message(sender: str, qset: QuorumSet, slot: int, value: Value) -> Msg:
    """What colluders tell a victim: x is committed (accepted and confirmed) for this slot."""
    b = Ballot(1, (value,))
    return Msg(sender, slot, qset, Externalize(b, 1))
