"""Ballot protocol for one slot (draft-mazieres-dinrg-scp-05, "Ballots", "Prepare message",
"Commit message", "Externalize message"; SCP paper section 6).

Rules of this file: it owns b (current ballot), p and p' (highest accepted-prepared ballots,
incompatible), h (highest confirmed prepared, or in COMMIT the highest accepted commit), c
(lowest ballot we vote/accept/confirm commit for) and the phase. Every change goes through
the named steps below, and `check_invariants` runs after each of them. It never sends
anything: the slot turns our state into a message.

Steps, run on every new statement (the "hint") until nothing moves:
  attempt_accept_prepared   accept prepare(b') when a quorum votes/accepts it or a
                            v-blocking set accepts it                 -> p, p'
  attempt_confirm_prepared  confirm prepare(h') when a quorum accepts it  -> h, c
  attempt_accept_commit     accept commit(c..h) (quorum votes or v-blocking accepts)
                                                                       -> COMMIT phase
  attempt_confirm_commit    confirm commit(c..h) (quorum accepts)     -> EXTERNALIZE
and then
  attempt_bump              a v-blocking set is at higher counters: jump to the lowest
                            counter that is no longer v-blocking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from mcnode.scp.msg import INFINITY, Ballot, BallotTopic, Commit, Externalize, Prepare, Value
from mcnode.scp.quorum_set import NodeID

if TYPE_CHECKING:
    from mcnode.scp.slot import Slot

PREPARE, CONFIRM, EXTERNALIZE = "PREPARE", "COMMIT", "EXTERNALIZE"
Values = tuple[Value, ...]


class InvariantViolation(AssertionError):
    """Our own ballot state broke a protocol invariant: a bug, never a peer's fault."""


# -- what a statement says (draft: the federated votes each message conveys) ------------------
def votes_prepare(st: BallotTopic, b: Ballot) -> bool:
    """Does `st` vote-or-accept prepare(b)?"""
    if isinstance(st, Prepare):
        return b.n <= st.ballot.n and b.values == st.ballot.values
    if isinstance(st, Commit):
        return b.values == st.ballot.values  # vote prepare(<inf, x>)
    return b.values == st.commit.values


def accepted_prepared(st: BallotTopic, b: Ballot) -> bool:
    """Does `st` accept prepare(b)?"""
    if isinstance(st, Prepare):
        p, pp = st.prepared, st.prepared_prime
        return (p is not None and b.n <= p.n and b.values == p.values) or (
            pp is not None and b.n <= pp.n and b.values == pp.values
        )
    if isinstance(st, Commit):
        return b.values == st.ballot.values and b.n <= st.prepared_n
    return b.values == st.commit.values


def votes_commit(st: BallotTopic, x: Values, lo: int, hi: int) -> bool:
    """Does `st` vote-or-accept commit(<n, x>) for every lo <= n <= hi?"""
    if isinstance(st, Prepare):
        return st.c_n != 0 and st.ballot.values == x and st.c_n <= lo and hi <= st.h_n
    if isinstance(st, Commit):
        return st.ballot.values == x and st.c_n <= lo
    return st.commit.values == x and st.commit.n <= lo


def accepted_commit(st: BallotTopic, x: Values, lo: int, hi: int) -> bool:
    """Does `st` accept commit(<n, x>) for every lo <= n <= hi?"""
    if isinstance(st, Prepare):
        return False
    if isinstance(st, Commit):
        return st.ballot.values == x and st.c_n <= lo and hi <= st.h_n
    return st.commit.values == x and st.commit.n <= lo


def _votes_commit_of(st: BallotTopic, x: Values) -> bool:
    """Does `st` vote-or-accept commit of some ballot of `x`?"""
    if isinstance(st, Prepare):
        return st.c_n != 0 and st.ballot.values == x
    if isinstance(st, Commit):
        return st.ballot.values == x
    return st.commit.values == x


def statement_counter(st: BallotTopic) -> int:
    if isinstance(st, Externalize):
        return INFINITY
    return st.ballot.n


def _rank(st: BallotTopic) -> int:
    return 0 if isinstance(st, Prepare) else 1 if isinstance(st, Commit) else 2


def _opt_key(b: Ballot | None) -> tuple[int, int, Values]:
    return (0, 0, ()) if b is None else (1, b.n, b.values)


def is_newer_ballot_statement(old: BallotTopic | None, new: BallotTopic) -> bool:
    """Statements of one node only move forward (draft: PREPARE < COMMIT < EXTERNALIZE)."""
    if old is None:
        return True
    if _rank(old) != _rank(new):
        return _rank(new) > _rank(old)
    if isinstance(old, Prepare) and isinstance(new, Prepare):
        ko = (old.ballot, _opt_key(old.prepared), _opt_key(old.prepared_prime), old.h_n)
        kn = (new.ballot, _opt_key(new.prepared), _opt_key(new.prepared_prime), new.h_n)
        return kn > ko
    if isinstance(old, Commit) and isinstance(new, Commit):
        return (new.ballot, new.prepared_n, new.h_n) > (old.ballot, old.prepared_n, old.h_n)
    return False  # EXTERNALIZE never changes


def _find_extended_interval(
    boundaries: Iterable[int], pred: Callable[[int, int], bool]
) -> tuple[int, int] | None:
    """Largest [lo, hi] over the boundaries (scanned from the top) for which `pred` holds."""
    lo = hi = 0
    for bnd in sorted(set(boundaries), reverse=True):
        if lo == 0:
            cur = (bnd, bnd)
        elif bnd > hi:
            continue
        else:
            cur = (bnd, hi)
        if pred(*cur):
            lo, hi = cur
        elif lo != 0:
            break
    return (lo, hi) if lo != 0 else None


class BallotProtocol:
    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.phase = PREPARE
        self.b: Ballot | None = None
        self.p: Ballot | None = None
        self.pp: Ballot | None = None
        self.h: Ballot | None = None
        self.c: Ballot | None = None
        self.value_override: Values | None = None  # h's value once confirmed prepared
        self.overridden_bump_taken = False  # late_candidates: at most one per slot
        self.heard_from_quorum = False
        self.latest: dict[NodeID, BallotTopic] = {}
        # Derived views of `latest`, recomputed only when a statement changes.
        self._version = 0
        self._cache_version = -1
        self._cand_cache: dict[object, list[Ballot]] = {}
        self._bound_cache: dict[Values, set[int]] = {}
        self.timer_at: float | None = None
        self.externalized: Values | None = None
        # Who moved the last successful federated vote ("quorum"/"v-blocking", nodes): the
        # step that acts on it names them in the trace.
        self._why: tuple[str, frozenset[NodeID]] | None = None

    # -- our statement -------------------------------------------------------------------
    def statement(self) -> BallotTopic | None:
        if self.phase == EXTERNALIZE:
            assert self.c is not None and self.h is not None
            return Externalize(self.c, self.h.n)
        if self.b is None:
            return None
        if self.phase == CONFIRM:
            assert self.p is not None and self.c is not None and self.h is not None
            return Commit(self.b, self.p.n, self.c.n, self.h.n)
        h_n = self.h.n if self.h is not None and self.h.values == self.b.values else 0
        c_n = self.c.n if self.c is not None and h_n else 0
        return Prepare(self.b, self.p, self.pp, c_n, h_n)

    def _record_self(self) -> None:
        st = self.statement()
        if st is not None:
            self._set_latest(self.slot.node_id, st)

    def _set_latest(self, node: NodeID, st: BallotTopic) -> None:
        if self.latest.get(node) != st:
            self.latest[node] = st
            self._version += 1

    def _caches(self) -> None:
        if self._cache_version != self._version:
            self._cache_version = self._version
            self._cand_cache.clear()
            self._bound_cache.clear()

    def check_invariants(self) -> None:
        b, p, pp, h, c = self.b, self.p, self.pp, self.h, self.c
        bad: str | None = None
        if self.phase in (CONFIRM, EXTERNALIZE) and (
            b is None or p is None or c is None or h is None
        ):
            bad = f"{self.phase} needs b, p, c and h"
        elif b is not None and b.n == 0:
            bad = "ballot counter 0"
        elif p is not None and pp is not None and not (pp < p and pp.values != p.values):
            bad = f"p'={pp} not below and incompatible with p={p}"
        elif h is not None and (b is None or not h.less_and_compatible(b)):
            bad = f"h={h} not below and compatible with b={b}"
        elif c is not None and (h is None or b is None or not c.less_and_compatible(h)):
            bad = f"c={c} not below and compatible with h={h}"
        elif self.phase == CONFIRM and p is not None and b is not None and p.values != b.values:
            bad = f"in COMMIT p={p} must share b's value"
        if bad:
            raise InvariantViolation(f"slot {self.slot.index} node {self.slot.node_id}: {bad}")

    # -- inputs --------------------------------------------------------------------------
    def handle(self, sender: NodeID, st: BallotTopic) -> bool:
        """A peer's ballot statement; returns False if stale or ignored."""
        if not is_newer_ballot_statement(self.latest.get(sender), st):
            return False
        if self.phase == EXTERNALIZE:
            # Keep only statements that agree with what we externalized (for laggards' quorums).
            c = self.c
            if isinstance(st, Externalize) and c is not None and st.commit.values == c.values:
                self._set_latest(sender, st)
            return True
        self._set_latest(sender, st)
        self.advance(st)
        return True

    def on_new_composite(self, composite: Values) -> None:
        """Nomination produced a (new) composite candidate: start balloting if idle, or
        (`ScpConfig.late_candidates`) replace a ballot of which nothing is prepared with the
        next counter and the new composite."""
        if self.phase != PREPARE:
            return
        if self.b is None:
            self._why = ("nomination", frozenset())
            if self._bump_state(composite, force=False):
                self.advance(None)
        elif (
            self.slot.config.late_candidates
            and self.b.values != composite
            and self.p is None
            and self.h is None
        ):
            self._why = ("late candidate", frozenset())
            if self._bump_state(composite, force=True, n=self.b.n + 1):
                self.advance(None)

    def on_timeout(self) -> None:
        """Ballot timer fired: abandon the ballot, move to counter + 1."""
        self.timer_at = None
        if self.phase in (PREPARE, CONFIRM):
            self._why = ("timer", frozenset())
            self._abandon_ballot(0)
            self.advance(None)

    # -- driving -------------------------------------------------------------------------
    def advance(self, hint: BallotTopic | None) -> None:
        """The draft's steps in order, repeated while they change our state."""
        for _ in range(64):
            moved = False
            for h in (hint, self.latest.get(self.slot.node_id)):
                if h is None:
                    continue
                moved |= self.attempt_accept_prepared(h)
                moved |= self.attempt_confirm_prepared(h)
                moved |= self.attempt_accept_commit(h)
                moved |= self.attempt_confirm_commit(h)
            if not moved:
                break
        while self.attempt_bump():
            own = self.latest.get(self.slot.node_id)
            if own is not None:
                self.attempt_accept_prepared(own)
                self.attempt_confirm_prepared(own)
                self.attempt_accept_commit(own)
                self.attempt_confirm_commit(own)
        self._check_heard_from_quorum()

    def _changed(self, what: str) -> None:
        self._record_self()
        self.check_invariants()
        by, nodes = self._why or ("", frozenset())
        self._why = None
        self.slot.trace(
            what,
            phase=self.phase,
            by=by or None,
            nodes=nodes,
            b=self.b,
            p=self.p,
            pp=self.pp,
            h=self.h,
            c=self.c,
        )

    # -- federated voting helpers -----------------------------------------------------------
    def _federated_accept(
        self, voted: Callable[[BallotTopic], bool], accepted: Callable[[BallotTopic], bool]
    ) -> bool:
        """Draft "Federated voting": accept when a v-blocking set accepted, or a quorum
        voted or accepted. Notes which set it was for the trace."""
        me = self.slot.node_id
        acc = frozenset(n for n, st in self.latest.items() if n != me and accepted(st))
        if acc and self.slot.v_blocking(acc):
            self._why = ("v-blocking", acc)
            return True
        support = frozenset(n for n, st in self.latest.items() if voted(st) or accepted(st))
        quorum = self.slot.quorum(support)
        if quorum:
            self._why = ("quorum", quorum)
            return True
        return False

    def _federated_ratify(self, pred: Callable[[BallotTopic], bool]) -> bool:
        """Confirm: a quorum accepted. Notes the quorum for the trace."""
        quorum = self.slot.quorum(frozenset(n for n, st in self.latest.items() if pred(st)))
        if quorum:
            self._why = ("quorum", quorum)
            return True
        return False

    def _prepare_candidates(self, hint: BallotTopic) -> list[Ballot]:
        """Ballots that may be (accepted/confirmed) prepared, for the hint's values, highest
        first. Only ballots not above the hint's own top vote for that value are useful."""
        if isinstance(hint, Prepare):
            tops = [hint.ballot, hint.prepared, hint.prepared_prime]
        elif isinstance(hint, Commit):
            tops = [Ballot(INFINITY, hint.ballot.values)]
        else:
            tops = [Ballot(INFINITY, hint.commit.values)]
        top_for: dict[Values, int] = {}
        for t in tops:
            if t is not None and t.n >= top_for.get(t.values, -1):
                top_for[t.values] = t.n
        self._caches()
        key = frozenset(top_for.items())
        hit = self._cand_cache.get(key)
        if hit is not None:
            return hit
        out: set[Ballot] = set()
        for st in self.latest.values():
            if isinstance(st, Prepare):
                cands: list[Ballot | None] = [st.ballot, st.prepared, st.prepared_prime]
            elif isinstance(st, Commit):
                cands = [
                    Ballot(st.prepared_n, st.ballot.values),
                    Ballot(INFINITY, st.ballot.values),
                ]
            else:
                cands = [Ballot(INFINITY, st.commit.values)]
            for cb in cands:
                if cb is None:
                    continue
                top = top_for.get(cb.values)
                if top is not None and cb.n <= top:
                    out.add(cb)
        result = sorted(out, reverse=True)
        self._cand_cache[key] = result
        return result

    # -- step 1: accept prepared -------------------------------------------------------------
    def attempt_accept_prepared(self, hint: BallotTopic) -> bool:
        """Draft "Prepare message" (prepared, preparedPrime); paper 6.2 step 1-2."""
        self._why = None
        if self.phase not in (PREPARE, CONFIRM):
            return False
        for cand in self._prepare_candidates(hint):
            if self.phase == CONFIRM:
                # In COMMIT only a higher p with the committed value is of use.
                assert self.p is not None
                if not self.p.less_and_compatible(cand) or cand == self.p:
                    continue
            if self.pp is not None and cand <= self.pp:
                continue
            if self.p is not None and cand.less_and_compatible(self.p):
                continue
            if self._federated_accept(
                lambda st, b=cand: votes_prepare(st, b),
                lambda st, b=cand: accepted_prepared(st, b),
            ):
                return self._set_accept_prepared(cand)
        return False

    def _set_accept_prepared(self, ballot: Ballot) -> bool:
        changed = self._set_prepared(ballot)
        # c is a vote to commit; accepting an incompatible higher prepare aborts it.
        if (
            self.c is not None
            and self.h is not None
            and (
                (self.p is not None and self.h.less_and_incompatible(self.p))
                or (self.pp is not None and self.h.less_and_incompatible(self.pp))
            )
        ):
            self.c = None
            changed = True
        if changed:
            self._changed("accept prepared")
        return changed

    def _set_prepared(self, ballot: Ballot) -> bool:
        p = self.p
        if p is None:
            self.p = ballot
            return True
        if p < ballot:
            if p.values != ballot.values:
                self.pp = p
            self.p = ballot
            return True
        if ballot < p and ballot.values != p.values and (self.pp is None or self.pp < ballot):
            self.pp = ballot
            return True
        return False

    # -- step 2: confirm prepared ------------------------------------------------------------
    def attempt_confirm_prepared(self, hint: BallotTopic) -> bool:
        """Draft "Prepare message" (hCounter, cCounter); paper 6.2 steps 3-4."""
        self._why = None
        if self.phase != PREPARE or self.p is None:
            return False
        cands = self._prepare_candidates(hint)
        new_h: Ballot | None = None
        i = 0
        for i, cand in enumerate(cands):  # noqa: B007 - i continues below
            if self.h is not None and cand <= self.h:
                break
            if self._federated_ratify(lambda st, b=cand: accepted_prepared(st, b)):
                new_h = cand
                break
        if new_h is None:
            return False
        new_c: Ballot | None = None
        cur_b = self.b
        if (
            self.c is None
            and (self.p is None or not new_h.less_and_incompatible(self.p))
            and (self.pp is None or not new_h.less_and_incompatible(self.pp))
        ):
            for cand in cands[i:]:
                if cur_b is not None and cand < cur_b:
                    break
                if not cand.less_and_compatible(new_h):
                    continue
                if self._federated_ratify(lambda st, b=cand: accepted_prepared(st, b)):
                    new_c = cand
                else:
                    break
        return self._set_confirm_prepared(new_c, new_h)

    def _set_confirm_prepared(self, new_c: Ballot | None, new_h: Ballot) -> bool:
        changed = False
        self.value_override = new_h.values
        if (
            self.slot.config.late_candidates
            and self.b is not None
            and self.b.values != new_h.values
            and self.c is None
            and (self.p is None or self.p <= new_h)
            and (not self.overridden_bump_taken or self._committing(new_h.values))
        ):
            # late_candidates' other half. A quorum accepted another value prepared
            # (new_h), and from now on the nodes that confirm it vote only for its value
            # (value_override): our ballot waits for the ballot timer, which would move
            # us to that value anyway. Move now, to the next counter. This mends the
            # split a late candidate can make: some nodes moved to a bigger composite
            # just before learning that the others had prepared the smaller one.
            # Not for a confirmation older than a ballot we accepted prepared (p), and
            # once per slot: with ~100 ms between nodes, two halves of the network kept
            # confirming each other's older ballots and swapped values at every counter
            # (a livelock found at 100 ms RTT); after one such move, the timer decides,
            # unless a v-blocking set already votes to commit new_h's value: every
            # quorum of ours holds one of those nodes, and a node that votes commit
            # keeps its value unless it confirms another prepared at a higher counter,
            # so this move goes where our quorums are already headed, not into a swap.
            # It mends the split the first move itself can make: we moved to the
            # smaller value while a v-blocking set moved the others to the bigger one,
            # which they then confirmed and voted to commit (at 50 tx/s, one slot in
            # ~800 held the network 1.5 s at counter 3 that way).
            self.overridden_bump_taken = True
            why = self._why
            self._why = ("overridden", why[1] if why else frozenset())
            changed = self._bump_state(new_h.values, force=True, n=self.b.n + 1)
            self._why = why
        if self.b is None or self.b.values == new_h.values:
            if self.h is None or self.h < new_h:
                self.h = new_h
                changed = True
            if new_c is not None and new_c.n > 0:
                self.c = new_c
                changed = True
        changed |= self._update_current_if_needed(new_h)
        if self.h is not None:
            self.slot.nomination.stop()
        if changed:
            self._changed("confirm prepared")
        return changed

    # -- step 3: accept commit ---------------------------------------------------------------
    def _commit_boundaries(self, x: Values) -> set[int]:
        self._caches()
        hit = self._bound_cache.get(x)
        if hit is not None:
            return hit
        out: set[int] = set()
        for st in self.latest.values():
            if isinstance(st, Prepare):
                if st.ballot.values == x and st.c_n:
                    out.update((st.c_n, st.h_n))
            elif isinstance(st, Commit):
                if st.ballot.values == x:
                    out.update((st.c_n, st.h_n))
            elif st.commit.values == x:
                out.update((st.commit.n, st.h_n, INFINITY))
        out.discard(0)
        self._bound_cache[x] = out
        return out

    @staticmethod
    def _hint_value(hint: BallotTopic, for_confirm: bool) -> Values | None:
        if isinstance(hint, Prepare):
            return None if for_confirm or hint.c_n == 0 else hint.ballot.values
        if isinstance(hint, Commit):
            return hint.ballot.values
        return hint.commit.values

    def attempt_accept_commit(self, hint: BallotTopic) -> bool:
        """Draft "Commit message" (entering COMMIT); paper 6.2 step 5."""
        self._why = None
        if self.phase not in (PREPARE, CONFIRM):
            return False
        x = self._hint_value(hint, for_confirm=False)
        if x is None:
            return False
        if self.phase == CONFIRM and (self.h is None or self.h.values != x):
            return False
        span = _find_extended_interval(
            self._commit_boundaries(x),
            lambda lo, hi: self._federated_accept(
                lambda st: votes_commit(st, x, lo, hi),
                lambda st: accepted_commit(st, x, lo, hi),
            ),
        )
        if span is None:
            return False
        if self.phase == CONFIRM and self.h is not None and span[1] <= self.h.n:
            return False  # nothing above what we already accepted
        return self._set_accept_commit(Ballot(span[0], x), Ballot(span[1], x))

    def _set_accept_commit(self, c: Ballot, h: Ballot) -> bool:
        self.value_override = h.values
        changed = False
        if self.h != h or self.c != c:
            self.c, self.h = c, h
            changed = True
        if self.phase == PREPARE:
            self.phase = CONFIRM
            if self.b is not None and not h.less_and_compatible(self.b):
                self._bump_to_ballot(h, check=False)
            self.pp = None
            changed = True
        # Accepting commit(h) implies accepting prepare(h): keep p on the committed value.
        if self.p is None or self.p.values != h.values or self.p < h:
            self.p = h
            changed = True
        if changed:
            self._update_current_if_needed(self.h)
            self.slot.nomination.stop()
            self._changed("accept commit")
        return changed

    # -- step 4: confirm commit --------------------------------------------------------------
    def attempt_confirm_commit(self, hint: BallotTopic) -> bool:
        """Draft "Externalize message"; paper 6.2 step 6."""
        self._why = None
        if self.phase != CONFIRM or self.h is None or self.c is None:
            return False
        x = self._hint_value(hint, for_confirm=True)
        if x is None or x != self.c.values:
            return False
        span = _find_extended_interval(
            self._commit_boundaries(x),
            lambda lo, hi: self._federated_ratify(lambda st: accepted_commit(st, x, lo, hi)),
        )
        if span is None:
            return False
        self.c, self.h = Ballot(span[0], x), Ballot(span[1], x)
        if self.b is None or not self.h.less_and_compatible(self.b):
            self.b = self.h
        self.phase = EXTERNALIZE
        self.timer_at = None
        self.externalized = x
        self._changed("confirm commit")
        self.slot.on_externalized(x)
        return True

    def _committing(self, x: Values) -> bool:
        """Does a v-blocking set of peers vote (or accept) to commit a ballot of `x`?"""
        me = self.slot.node_id
        nodes = frozenset(n for n, st in self.latest.items() if n != me and _votes_commit_of(st, x))
        return bool(nodes) and self.slot.v_blocking(nodes)

    # -- step 5: bump ------------------------------------------------------------------------
    def attempt_bump(self) -> bool:
        """Draft "Prepare message", ballot.counter rule 4: a v-blocking set is ahead."""
        if self.phase not in (PREPARE, CONFIRM):
            return False
        local = self.b.n if self.b is not None else 0
        me = self.slot.node_id
        counters = {n: statement_counter(st) for n, st in self.latest.items() if n != me}
        ahead = frozenset(n for n, k in counters.items() if k > local)
        if not ahead or not self.slot.v_blocking(ahead):
            return False
        for k in sorted({k for k in counters.values() if k > local and k < INFINITY}):
            still = frozenset(n for n, kk in counters.items() if kk > k)
            if not still or not self.slot.v_blocking(still):
                self._why = ("v-blocking", frozenset(n for n, kk in counters.items() if kk >= k))
                return self._abandon_ballot(k)
        return False  # only externalized peers are ahead: commit steps will catch us up

    # -- ballot updates ----------------------------------------------------------------------
    def _abandon_ballot(self, n: int) -> bool:
        value = self.slot.nomination.composite
        if not value and self.b is not None:
            value = self.b.values
        if not value and self.p is not None:
            value = self.p.values  # draft: value of the highest accepted prepared ballot
        if not value:
            return False
        return self._bump_state(value, force=True, n=n)

    def _bump_state(self, value: Values, force: bool, n: int = 0) -> bool:
        if self.phase not in (PREPARE, CONFIRM):
            return False
        if not force and self.b is not None:
            return False
        if n == 0:
            n = self.b.n + 1 if self.b is not None else 1
        n = min(n, self.slot.max_counter())
        if self.b is not None and n <= self.b.n:
            return False
        new_b = Ballot(n, self.value_override if self.value_override is not None else value)
        changed = self._update_current_value(new_b)
        if changed:
            self._changed("bump")
            self._check_heard_from_quorum()
        return changed

    def _update_current_value(self, ballot: Ballot) -> bool:
        if self.phase not in (PREPARE, CONFIRM):
            return False
        if self.b is None:
            self._bump_to_ballot(ballot, check=True)
            return True
        if self.c is not None and self.c.values != ballot.values:
            return False
        if self.b < ballot:
            self._bump_to_ballot(ballot, check=True)
            return True
        return False

    def _update_current_if_needed(self, h: Ballot | None) -> bool:
        if h is not None and (self.b is None or self.b < h):
            self._bump_to_ballot(h, check=True)
            return True
        return False

    def _bump_to_ballot(self, ballot: Ballot, check: bool) -> None:
        if self.phase == EXTERNALIZE:
            raise InvariantViolation("bump after externalize")
        if check and self.b is not None and ballot < self.b:
            raise InvariantViolation(f"ballot would go down from {self.b} to {ballot}")
        got_bumped = self.b is None or self.b.n != ballot.n
        self.b = ballot
        if self.h is not None and self.h.values != ballot.values:
            self.h = None
            self.c = None
        if got_bumped:
            self.heard_from_quorum = False
            self.timer_at = None

    # -- timer -------------------------------------------------------------------------------
    def _check_heard_from_quorum(self) -> None:
        """Arm the ballot timer once a quorum is at our counter or beyond (draft rule 2)."""
        if self.b is None:
            return
        n = self.b.n
        at_or_above = frozenset(
            node
            for node, st in self.latest.items()
            if not isinstance(st, Prepare) or n <= st.ballot.n
        )
        if self.slot.quorum(at_or_above):
            if not self.heard_from_quorum:
                self.heard_from_quorum = True
                if self.phase != EXTERNALIZE:
                    self.timer_at = self.slot.now() + self.slot.config.ballot_timeout_for(n)
            if self.phase == EXTERNALIZE:
                self.timer_at = None
        else:
            self.heard_from_quorum = False
            self.timer_at = None

    # -- restart -----------------------------------------------------------------------------
    def restore(self, st: BallotTopic) -> None:
        """Rebuild our state from our own last statement (restart safety)."""
        if isinstance(st, Prepare):
            self.phase = PREPARE
            self.b, self.p, self.pp = st.ballot, st.prepared, st.prepared_prime
            self.h = Ballot(st.h_n, st.ballot.values) if st.h_n else None
            self.c = Ballot(st.c_n, st.ballot.values) if st.c_n else None
        elif isinstance(st, Commit):
            x = st.ballot.values
            self.phase = CONFIRM
            self.b = st.ballot
            self.p = Ballot(st.prepared_n, x)
            self.h, self.c = Ballot(st.h_n, x), Ballot(st.c_n, x)
        else:
            x = st.commit.values
            self.phase = EXTERNALIZE
            self.c, self.h = st.commit, Ballot(st.h_n, x)
            self.b = self.h
            self.p = self.h
            self.externalized = x
        if self.h is not None:
            self.value_override = self.h.values
        self._changed("restored")
