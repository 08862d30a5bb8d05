"""The top tier: the union of all minimal quorums (the nodes whose quorum sets every
agreement goes through; everyone else merely follows them).

Method: one incremental SAT solver holds "x is a quorum inside the quorum-holding components"
(every minimal quorum lies in one, see `core`). For each node v not yet placed, ask for a
quorum containing v; shrink it while it keeps v. If what is left has no quorum without v it
is a minimal quorum: all its nodes are top tier. Otherwise it contains a minimal quorum R
without v; R's nodes are top tier, and supersets of R can never be minimal quorums other than
R, so the clause "not all of R" is added for every later question. When the solver finds no
quorum containing v, v is in no minimal quorum.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysat.formula import IDPool
from pysat.solvers import Solver

from mcnode.fbas.core import Net, QsetEncoder, bits
from mcnode.fbas.intersection import SOLVER
from mcnode.fbas.model import Fbas, FbasInternalError, NodeId


@dataclass(frozen=True)
class TopTierResult:
    nodes: tuple[NodeId, ...]
    minimal_quorums_seen: int  # how many the search needed (not all of them)

    def to_dict(self) -> dict[str, object]:
        return {"top_tier": list(self.nodes), "size": len(self.nodes)}


def top_tier(fbas: Fbas) -> TopTierResult:
    net = Net(fbas)
    domain = 0
    for c in net.quorum_components():
        domain |= c
    members = list(bits(domain))
    pool = IDPool()
    x = {v: pool.id(("x", v)) for v in members}
    clauses: list[list[int]] = []
    enc = QsetEncoder(pool, clauses, x.get, "q")
    for v in members:
        q = net.qs[v]
        assert q is not None
        clauses.append([-x[v], enc.var(q)])
    tier = 0
    seen = 0
    with Solver(name=SOLVER, bootstrap_with=clauses) as solver:

        def record(minimal: int) -> None:
            nonlocal tier, seen
            if net.minimal_quorum(minimal) != minimal:
                raise FbasInternalError("top tier: a quorum taken as minimal is not")
            tier |= minimal
            seen += 1
            solver.add_clause([-x[u] for u in bits(minimal)])

        for v in members:
            while not (tier >> v) & 1:
                if not solver.solve(assumptions=[x[v]]):
                    break
                model = solver.get_model() or []
                q = sum(1 << u for u in members if model[x[u] - 1] > 0)
                q = net.minimal_quorum_with(q, v)
                rest = net.max_quorum(q & ~(1 << v))
                record(q if rest == 0 else net.minimal_quorum(rest))
    return TopTierResult(net.to_ids(tier), seen)
