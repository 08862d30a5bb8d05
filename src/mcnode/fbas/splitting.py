"""Minimal splitting sets (safety): the smallest sets B of nodes that, if Byzantine, let two
quorums of the other nodes disagree.

Definition (as in Florian et al., "The sum of its parts", and python-fbas): B splits the
network when there are sets Q1, Q2 with Q1 ∩ Q2 ⊆ B, each holding at least one node outside
B, and every member of Qi outside B has its quorum set satisfied by Qi. Byzantine members
need no satisfied quorum set: they can claim anything, to both sides. Without quorum
intersection the answer is the empty set; when no honest node can ever be in a quorum,
nothing splits the network (`size` None).

Method: one weighted MaxSAT problem (RC2): variables x_v, y_v (in Q1, Q2) and b_v
(Byzantine); hard clauses (x_v and not b_v) -> "Q1 satisfies qset(v)", the same for y,
(x_v and y_v) -> b_v, an honest member in each Qi; soft clauses "not b_v", weight 1. The
optimum is a smallest splitting set; the two quorums come with it and are checked against
the definition before returning.

Only nodes with a quorum set or named in one are variables: any other node could only be
a Byzantine member no honest node relies on, which never helps.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysat.examples.rc2 import RC2
from pysat.formula import WCNF, IDPool

from mcnode.fbas.core import Net, QsetEncoder, bits
from mcnode.fbas.model import Fbas, FbasInternalError, NodeId


@dataclass(frozen=True)
class SplittingResult:
    size: int | None  # None: no set of nodes can split the network
    example: tuple[NodeId, ...] | None
    quorums: tuple[tuple[NodeId, ...], tuple[NodeId, ...]] | None

    def to_dict(self) -> dict[str, object]:
        return {
            "size": self.size,
            "example": None if self.example is None else list(self.example),
        }


def is_split_witness(
    fbas: Fbas, byzantine: tuple[NodeId, ...], q1: tuple[NodeId, ...], q2: tuple[NodeId, ...]
) -> bool:
    """Check the definition directly on the model."""
    bad = set(byzantine)
    a, b = set(q1), set(q2)
    if not (a & b) <= bad or not (a - bad) or not (b - bad):
        return False
    for q in (a, b):
        for v in q - bad:
            qs = fbas.qset(v)
            if qs is None or not qs.satisfied_by(q):
                return False
    return True


def minimal_splitting_set(fbas: Fbas) -> SplittingResult:
    net = Net(fbas)
    domain = net.with_qset
    for v in bits(net.with_qset):
        domain |= net.succ[v]
    members = list(bits(domain))
    pool = IDPool()
    x = {v: pool.id(("x", v)) for v in members}
    y = {v: pool.id(("y", v)) for v in members}
    b = {v: pool.id(("b", v)) for v in members}
    hx = {v: pool.id(("hx", v)) for v in members}
    hy = {v: pool.id(("hy", v)) for v in members}
    hard: list[list[int]] = []
    ex = QsetEncoder(pool, hard, x.get, "qx")
    ey = QsetEncoder(pool, hard, y.get, "qy")
    for v in members:
        q = net.qs[v]
        if q is None:
            hard.append([-x[v], b[v]])
            hard.append([-y[v], b[v]])
        else:
            hard.append([-x[v], b[v], ex.var(q)])
            hard.append([-y[v], b[v], ey.var(q)])
        hard.append([-x[v], -y[v], b[v]])
        hard += [[-hx[v], x[v]], [-hx[v], -b[v]], [-hy[v], y[v]], [-hy[v], -b[v]]]
    hard.append([hx[v] for v in members])
    hard.append([hy[v] for v in members])
    wcnf = WCNF()
    for c in hard:
        wcnf.append(c)
    for v in members:
        wcnf.append([-b[v]], weight=1)
    with RC2(wcnf) as rc2:
        model = rc2.compute()
    if model is None:
        return SplittingResult(None, None, None)
    true = {lit for lit in model if lit > 0}
    bad = net.to_ids(sum(1 << v for v in members if b[v] in true))
    q1 = net.to_ids(sum(1 << v for v in members if x[v] in true))
    q2 = net.to_ids(sum(1 << v for v in members if y[v] in true))
    if not is_split_witness(fbas, bad, q1, q2):
        raise FbasInternalError("splitting-set certificate failed its check")
    return SplittingResult(len(bad), bad, (q1, q2))
