"""Quorum intersection, decided exactly with one SAT call.

Method (as in Lachowski's and Losa's encodings): two copies of a membership variable per node,
x_v (in Q1) and y_v (in Q2); x_v -> "Q1 satisfies qset(v)" with cardinality constraints for
thresholds (one activation variable per distinct inner set), the same for y; Q1 and Q2
non-empty; never x_v and y_v. Satisfiable means two disjoint quorums; unsatisfiable is a
proof that every two quorums intersect.

Before the solver: every minimal quorum lies in one strongly connected component (see
`core`), and two quorums intersect iff the minimal quorums inside them do. So with no
quorum-holding component the answer is a vacuous yes; with two or more, their largest
quorums are disjoint; with exactly one, the SAT problem is posed on it alone.

A certificate is shrunk to two minimal quorums and checked against the definition in
`model` before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysat.formula import IDPool
from pysat.solvers import Solver

from mcnode.fbas.core import Net, QsetEncoder, bits
from mcnode.fbas.model import Fbas, FbasInternalError, NodeId, Skipped

SOLVER = "cadical195"


@dataclass(frozen=True)
class IntersectionResult:
    intersection: bool
    disjoint_quorums: tuple[tuple[NodeId, ...], tuple[NodeId, ...]] | None
    has_quorum: bool
    skipped: tuple[Skipped, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "intersection": self.intersection,
            "disjoint_quorums": None
            if self.disjoint_quorums is None
            else [list(self.disjoint_quorums[0]), list(self.disjoint_quorums[1])],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def _disjoint_in(net: Net, comp: int) -> tuple[int, int] | None:
    """Two disjoint quorums inside `comp`, or None (a proof there are none)."""
    pool = IDPool()
    clauses: list[list[int]] = []
    members = list(bits(comp))
    x = {v: pool.id(("x", v)) for v in members}
    y = {v: pool.id(("y", v)) for v in members}
    ex = QsetEncoder(pool, clauses, x.get, "qx")
    ey = QsetEncoder(pool, clauses, y.get, "qy")
    for v in members:
        q = net.qs[v]
        assert q is not None
        clauses.append([-x[v], ex.var(q)])
        clauses.append([-y[v], ey.var(q)])
        clauses.append([-x[v], -y[v]])
    clauses.append([x[v] for v in members])
    clauses.append([y[v] for v in members])
    clauses.append([-y[members[0]]])  # Q1 and Q2 are interchangeable
    with Solver(name=SOLVER, bootstrap_with=clauses) as solver:
        if not solver.solve():
            return None
        model = {lit for lit in solver.get_model() or [] if lit > 0}
    q1 = sum(1 << v for v in members if x[v] in model)
    q2 = sum(1 << v for v in members if y[v] in model)
    return q1, q2


def disjoint_quorums_masks(net: Net) -> tuple[int, int] | None:
    comps = net.quorum_components()
    if len(comps) >= 2:
        return net.max_quorum(comps[0]), net.max_quorum(comps[1])
    if not comps:
        return None
    return _disjoint_in(net, comps[0])


def check_intersection(fbas: Fbas) -> IntersectionResult:
    """Does every pair of quorums intersect? If not, two disjoint minimal quorums."""
    net = Net(fbas)
    has_quorum = net.max_quorum(net.all) != 0
    pair = disjoint_quorums_masks(net)
    if pair is None:
        return IntersectionResult(True, None, has_quorum, fbas.skipped)
    q1, q2 = net.minimal_quorum(pair[0]), net.minimal_quorum(pair[1])
    a, b = net.to_ids(q1), net.to_ids(q2)
    if not (fbas.is_quorum(a) and fbas.is_quorum(b)) or set(a) & set(b):
        raise FbasInternalError("disjoint-quorum certificate failed its check")
    return IntersectionResult(False, (a, b), has_quorum, fbas.skipped)
