"""Minimal blocking sets (liveness): the smallest sets B of nodes such that, once B fails,
the other nodes hold no quorum. Equivalently B meets every (minimal) quorum. The search is
confined to the components that hold quorums (see `core`): every minimal quorum lies there.

Two exact methods over one incremental SAT solver, where a totalizer bounds |B| <= k under an
assumption and k grows from 0 until the solver finds a set (the first k is the minimum):

- "rounds" (default): the elimination cascade, unrolled. a[r][v] says v is still alive after
  r rounds; a[0][v] unless v is in B; a[r][v] and "the alive set satisfies qset(v)" force
  a[r+1][v] (one counter per distinct quorum set per round, shared by all nodes using it);
  every a[R][v] must be false. The alive set shrinks each round until it is the largest
  quorum left, so R = |domain| rounds decide exactly. Counting arguments (k organizations of
  2-of-3 must fall) stay local to each round, which is what makes symmetric networks easy.
- "ihs" (fallback for domains whose unrolling would be too large): implicit hitting sets.
  The solver proposes B meeting every quorum found so far; the polynomial check
  `max_quorum(domain - B)` proves B blocking or yields quorums avoiding B (shrunk to minimal
  ones, pairwise disjoint), which are added.

Enumerating all minimal blocking sets up to a size continues the same loop, forbidding
supersets of each set found; a set found at bound k is then minimal, since every blocking set
smaller than k was found before k grew.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pysat.card import CardEnc, ITotalizer
from pysat.formula import IDPool
from pysat.solvers import Solver

from mcnode.fbas.core import CQ, ENCODING, Net, bits
from mcnode.fbas.intersection import SOLVER
from mcnode.fbas.model import Fbas, FbasInternalError, NodeId


@dataclass(frozen=True)
class BlockingResult:
    size: int
    example: tuple[NodeId, ...]
    all: tuple[tuple[NodeId, ...], ...] | None = None  # when asked for, up to `all_up_to`
    all_up_to: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"size": self.size, "example": list(self.example)}
        if self.all is not None:
            out["all"] = [list(s) for s in self.all]
            out["all_up_to"] = self.all_up_to
        return out


def is_blocking(fbas: Fbas, nodes: tuple[NodeId, ...]) -> bool:
    net = Net(fbas)
    return net.max_quorum(net.all & ~net.to_mask(nodes)) == 0


Method = Literal["auto", "rounds", "ihs"]
ROUNDS_BUDGET = 3_000_000  # literal occurrences in the unrolled cascade before "auto" uses ihs


def _rounds_size(net: Net, members: list[int]) -> int:
    distinct: dict[CQ, int] = {}

    def walk(q: CQ) -> None:
        if q not in distinct:
            distinct[q] = q.size * max(1, min(q.threshold, q.size))
            for sub in q.inner:
                walk(sub)

    for v in members:
        q = net.qs[v]
        assert q is not None
        walk(q)
    return len(members) * (sum(distinct.values()) + 3 * len(members))


def _rounds_clauses(
    net: Net, members: list[int], pool: IDPool, b: dict[int, int]
) -> list[list[int]]:
    rounds = len(members)
    alive = [{v: pool.id(("a", r, v)) for v in members} for r in range(rounds + 1)]
    clauses: list[list[int]] = []
    for v in members:
        clauses.append([b[v], alive[0][v]])
        clauses.append([-alive[rounds][v]])
    for r in range(rounds):
        now = alive[r]
        done: dict[CQ, int] = {}

        def sat_var(
            q: CQ, r: int = r, now: dict[int, int] = now, done: dict[CQ, int] = done
        ) -> int:
            """s with: (at least threshold of q's members alive) -> s."""
            hit = done.get(q)
            if hit is not None:
                return hit
            s = pool.id(("s", r, len(done)))
            done[q] = s
            lits = [now[v] for v in bits(q.mask) if v in now]
            lits += [sat_var(sub) for sub in q.inner]
            t = q.threshold
            if t > len(lits):
                pass  # never satisfied: nothing forces s
            elif t == 1:
                clauses.extend([s, -x] for x in lits)
            elif t == len(lits):
                clauses.append([s, *(-x for x in lits)])
            else:
                enc = CardEnc.atmost(lits=lits, bound=t - 1, vpool=pool, encoding=ENCODING)
                clauses.extend([s, *c] for c in enc.clauses)
            return s

        for v in members:
            q = net.qs[v]
            assert q is not None
            clauses.append([-now[v], -sat_var(q), alive[r + 1][v]])
    return clauses


def minimal_blocking_sets(
    fbas: Fbas, all_up_to: int | None = None, method: Method = "auto"
) -> BlockingResult:
    net = Net(fbas)
    domain = 0
    for c in net.quorum_components():
        domain |= c
    if domain == 0:
        return BlockingResult(0, (), ((),) if all_up_to is not None else None, all_up_to)
    members = list(bits(domain))
    if method == "auto":
        method = "rounds" if _rounds_size(net, members) <= ROUNDS_BUDGET else "ihs"
    pool = IDPool()
    var = {v: pool.id(("b", v)) for v in members}
    clauses = _rounds_clauses(net, members, pool, var) if method == "rounds" else []
    tot = ITotalizer(lits=[var[v] for v in members], ubound=len(members), top_id=pool.top)
    found: list[int] = []
    limit = len(members) if all_up_to is None else max(0, min(all_up_to, len(members)))
    with Solver(name=SOLVER, bootstrap_with=clauses + tot.cnf.clauses) as solver:
        refine: Callable[[int], bool] = (
            (lambda b: False)
            if method == "rounds"
            else (lambda b: _harvest(net, domain, solver, var, b))
        )
        refine(0)
        k = 0
        while k <= len(members):
            if found and k > limit:
                break
            if not solver.solve(assumptions=[-tot.rhs[k]] if k < len(members) else []):
                k += 1
                continue
            model = solver.get_model() or []
            b = sum(1 << v for v in members if model[var[v] - 1] > 0)
            if refine(b):
                continue
            found.append(b)
            if all_up_to is None or b == 0:
                break
            solver.add_clause([-var[v] for v in bits(b)])
    tot.delete()
    if not found:
        raise FbasInternalError("no blocking set found (the whole domain should block)")
    best = found[0]
    example = net.to_ids(best)
    if not is_blocking(fbas, example):
        raise FbasInternalError("blocking-set certificate failed its check")
    every = None
    if all_up_to is not None:
        every = tuple(sorted((net.to_ids(b) for b in found), key=lambda s: (len(s), s)))
        every = tuple(s for s in every if len(s) <= all_up_to)
    return BlockingResult(best.bit_count(), example, every, all_up_to)


def _harvest(net: Net, domain: int, solver: Solver, var: dict[int, int], blocked: int) -> bool:
    """Add minimal quorums avoiding `blocked`, pairwise disjoint; True if there were any."""
    any_found = False
    avoid = blocked
    while True:
        q = net.max_quorum(domain & ~avoid)
        if not q:
            return any_found
        m = net.minimal_quorum(q)
        solver.add_clause([var[v] for v in bits(m)])
        avoid |= m
        any_found = True
