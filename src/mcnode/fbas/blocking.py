"""Minimal blocking sets (liveness): the smallest sets B of nodes such that, once B fails,
the other nodes hold no quorum. Equivalently B meets every (minimal) quorum.

Method: implicit hitting sets. A SAT solver proposes a set B of at most k nodes meeting every
quorum found so far (a totalizer bounds |B| under an assumption, so the solver stays
incremental); the polynomial check `max_quorum(rest - B)` either proves B blocking or yields a
quorum avoiding B, which is shrunk to a minimal quorum and added, along with further disjoint
quorums avoiding B. When no set of k nodes meets the collected quorums, none meets all of
them, so k grows; the first B that passes the check is a smallest blocking set. The search
is confined to the components that hold quorums (see `core`).

Enumerating all minimal blocking sets up to a size continues the same loop, forbidding
supersets of each set found; a passing proposal of size k is then minimal, since every
blocking set smaller than k was found before k grew.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysat.card import ITotalizer
from pysat.solvers import Solver

from mcnode.fbas.core import Net, bits
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


def minimal_blocking_sets(fbas: Fbas, all_up_to: int | None = None) -> BlockingResult:
    net = Net(fbas)
    domain = 0
    for c in net.quorum_components():
        domain |= c
    if domain == 0:
        return BlockingResult(0, (), ((),) if all_up_to is not None else None, all_up_to)
    members = list(bits(domain))
    var = {v: i + 1 for i, v in enumerate(members)}
    tot = ITotalizer(lits=[var[v] for v in members], ubound=len(members), top_id=len(members))
    found: list[int] = []
    with Solver(name=SOLVER, bootstrap_with=tot.cnf.clauses) as solver:

        def harvest(blocked: int) -> bool:
            """Add minimal quorums avoiding `blocked`, pairwise disjoint; True if any."""
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

        harvest(0)
        k = 1
        limit = len(members) if all_up_to is None else max(0, min(all_up_to, len(members)))
        while k <= len(members):
            if found and k > limit:
                break
            if not solver.solve(assumptions=[-tot.rhs[k]]):
                k += 1
                continue
            model = solver.get_model() or []
            b = sum(1 << v for v in members if model[var[v] - 1] > 0)
            if harvest(b):
                continue
            found.append(b)
            if all_up_to is None:
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
