"""The network compiled for speed: node indices, node sets as int bitmasks, quorum sets as
nested (threshold, member mask, inner sets) values, and the polynomial building blocks every
analysis uses:

- `max_quorum(s)`: the largest quorum inside `s` (the greatest fixpoint of "drop members whose
  quorum set `s` does not satisfy"), 0 when `s` holds no quorum;
- `minimal_quorum(q)`: shrink a quorum to a minimal one (one pass suffices: a node whose
  removal leaves no quorum stays essential in every subset);
- `quorum_components()`: the strongly connected components of the trust graph among the nodes
  that can be in a quorum, keeping those that contain a quorum. Every minimal quorum lies in
  one of them (take a sink component of the graph a minimal quorum induces on itself: it is a
  quorum, so it is all of it), so intersection, blocking sets and the top tier are decided
  there alone.

Also the shared SAT encoding of "this set satisfies that quorum set". Nothing here reads
files or clocks; the same network gives the same indices and clauses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pysat.card import CardEnc, EncType
from pysat.formula import IDPool

from mcnode.fbas.model import Fbas, NodeId, QSet


@dataclass(frozen=True)
class CQ:
    """A compiled quorum set; `threshold` is above `size` when it cannot be satisfied."""

    threshold: int
    mask: int
    inner: tuple[CQ, ...]
    size: int


def bits(mask: int) -> Iterator[int]:
    """Indices of the set bits, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def satisfies(q: CQ, s: int) -> bool:
    count = (s & q.mask).bit_count()
    if count >= q.threshold:
        return True
    need = q.threshold - count
    if need > len(q.inner):
        return False
    for sub in q.inner:
        if satisfies(sub, s):
            need -= 1
            if need == 0:
                return True
    return False


@dataclass
class Net:
    """The indexed network. Indices follow `Fbas.nodes` order."""

    fbas: Fbas
    ids: list[NodeId] = field(init=False)
    index: dict[NodeId, int] = field(init=False)
    qs: list[CQ | None] = field(init=False)
    succ: list[int] = field(init=False)
    with_qset: int = field(init=False)

    def __post_init__(self) -> None:
        self.ids = list(self.fbas.ids)
        self.index = {v: i for i, v in enumerate(self.ids)}
        cache: dict[QSet, CQ] = {}
        self.qs = [
            None if n.qset is None else self._compile(n.qset, cache) for n in self.fbas.nodes
        ]
        self.succ = [0 if q is None else self._all_members(q) for q in self.qs]
        self.with_qset = sum(1 << i for i, q in enumerate(self.qs) if q is not None)

    def _compile(self, q: QSet, cache: dict[QSet, CQ]) -> CQ:
        hit = cache.get(q)
        if hit is not None:
            return hit
        mask = 0
        for v in q.validators:
            mask |= 1 << self.index[v]
        inner = tuple(self._compile(sub, cache) for sub in q.inner)
        size = q.size
        threshold = q.threshold if q.satisfiable_shape else size + 1
        out = CQ(threshold, mask, inner, size)
        cache[q] = out
        return out

    def _all_members(self, q: CQ) -> int:
        mask = q.mask
        for sub in q.inner:
            mask |= self._all_members(sub)
        return mask

    @property
    def all(self) -> int:
        return (1 << len(self.ids)) - 1

    def to_ids(self, mask: int) -> tuple[NodeId, ...]:
        return tuple(self.ids[i] for i in bits(mask))

    def to_mask(self, nodes: tuple[NodeId, ...] | frozenset[NodeId] | list[NodeId]) -> int:
        m = 0
        for v in nodes:
            m |= 1 << self.index[v]
        return m

    def max_quorum(self, s: int) -> int:
        s &= self.with_qset
        qs = self.qs
        changed = True
        while changed and s:
            changed = False
            for v in bits(s):
                q = qs[v]
                assert q is not None
                if not satisfies(q, s):
                    s &= ~(1 << v)
                    changed = True
        return s

    def minimal_quorum(self, q: int) -> int:
        for v in bits(q):
            if not (q >> v) & 1:
                continue
            r = self.max_quorum(q & ~(1 << v))
            if r:
                q = r
        return q

    def minimal_quorum_with(self, q: int, keep: int) -> int:
        """Shrink quorum `q` while it still contains node index `keep`."""
        for v in bits(q):
            if v == keep or not (q >> v) & 1:
                continue
            r = self.max_quorum(q & ~(1 << v))
            if (r >> keep) & 1:
                q = r
        return q

    def components(self, within: int) -> list[int]:
        """Strongly connected components of the trust graph induced on `within` (iterative
        Tarjan), in a deterministic order."""
        succ = [self.succ[v] & within for v in range(len(self.ids))]
        index: dict[int, int] = {}
        low: dict[int, int] = {}
        on_stack: set[int] = set()
        stack: list[int] = []
        out: list[int] = []
        counter = 0
        for root in bits(within):
            if root in index:
                continue
            work: list[tuple[int, Iterator[int]]] = [(root, bits(succ[root]))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                v, it = work[-1]
                advanced = False
                for w in it:
                    if w not in index:
                        index[w] = low[w] = counter
                        counter += 1
                        stack.append(w)
                        on_stack.add(w)
                        work.append((w, bits(succ[w])))
                        advanced = True
                        break
                    if w in on_stack:
                        low[v] = min(low[v], index[w])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    comp = 0
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp |= 1 << w
                        if w == v:
                            break
                    out.append(comp)
        return sorted(out, key=lambda m: m & -m)

    def quorum_components(self) -> list[int]:
        """Components (of the graph on the nodes that can be in a quorum) holding a quorum."""
        top = self.max_quorum(self.all)
        return [c for c in self.components(top) if self.max_quorum(c)]


# -- SAT encoding ----------------------------------------------------------------------------

ENCODING = EncType.seqcounter


@dataclass
class QsetEncoder:
    """Adds clauses `s_q -> (q is satisfied by the set whose node literals lit(v) gives)`,
    one activation variable per distinct quorum set and copy, shared by every node that
    uses it. A node whose lit is None is outside the set (counts as absent)."""

    pool: IDPool
    clauses: list[list[int]]
    lit: Callable[[int], int | None]
    tag: str
    done: dict[CQ, int] = field(default_factory=dict)

    def var(self, q: CQ) -> int:
        hit = self.done.get(q)
        if hit is not None:
            return hit
        s = self.pool.id((self.tag, len(self.done)))
        self.done[q] = s
        lits: list[int] = [x for x in (self.lit(v) for v in bits(q.mask)) if x is not None]
        lits += [self.var(sub) for sub in q.inner]
        self._guarded_atleast(s, lits, q.threshold)
        return s

    def _guarded_atleast(self, guard: int, lits: list[int], t: int) -> None:
        if t > len(lits):
            self.clauses.append([-guard])
        elif t == len(lits):
            self.clauses.extend([-guard, x] for x in lits)
        elif t == 1:
            self.clauses.append([-guard, *lits])
        else:
            enc = CardEnc.atleast(lits=lits, bound=t, vpool=self.pool, encoding=ENCODING)
            self.clauses.extend([-guard, *c] for c in enc.clauses)
