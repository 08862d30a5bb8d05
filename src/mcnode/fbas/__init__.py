"""Quorum analysis of a federated Byzantine agreement system (FBAS).

Exact answers (SAT proofs, never samples) to: do all quorums intersect, and if not, which two
are disjoint; which smallest sets of nodes can halt the network (blocking) or split it
(splitting); which nodes form the top tier. Inputs are already-parsed documents (`parse`);
this package reads no files and no clocks (the CLI in `mcnode.fbas.cli` does the reading).

The node calls `check_intersection(fbas)` at start-up and for `/status`.
"""

from mcnode.fbas.blocking import BlockingResult, is_blocking, minimal_blocking_sets
from mcnode.fbas.intersection import IntersectionResult, check_intersection
from mcnode.fbas.model import (
    Fbas,
    FbasError,
    FbasInputError,
    FbasInternalError,
    Node,
    NodeId,
    QSet,
    Skipped,
)
from mcnode.fbas.parse import (
    from_explorer,
    from_json,
    from_node_configs,
    from_quorum_sets,
    from_stellar_core,
)

__all__ = [
    "BlockingResult",
    "Fbas",
    "FbasError",
    "FbasInputError",
    "FbasInternalError",
    "IntersectionResult",
    "Node",
    "NodeId",
    "QSet",
    "Skipped",
    "check_intersection",
    "from_explorer",
    "from_json",
    "from_node_configs",
    "from_quorum_sets",
    "from_stellar_core",
    "is_blocking",
    "minimal_blocking_sets",
]
