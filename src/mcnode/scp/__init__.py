"""Sans-IO Stellar Consensus Protocol (draft-mazieres-dinrg-scp-05). Stable API: DESIGN.md."""

from mcnode.scp.ballot import InvariantViolation
from mcnode.scp.codec import MsgDecodeError
from mcnode.scp.config import ScpConfig
from mcnode.scp.msg import (
    INFINITY,
    Ballot,
    Commit,
    Externalize,
    InvalidMsg,
    Msg,
    Nominate,
    NominatePrepare,
    Prepare,
    Value,
)
from mcnode.scp.node import Externalized, Node
from mcnode.scp.predicates import is_quorum, is_v_blocking
from mcnode.scp.quorum_set import NodeID, QuorumSet, QuorumSetError, parse_quorum_set

__all__ = [
    "INFINITY",
    "Ballot",
    "Commit",
    "Externalize",
    "Externalized",
    "InvalidMsg",
    "InvariantViolation",
    "Msg",
    "MsgDecodeError",
    "Node",
    "NodeID",
    "Nominate",
    "NominatePrepare",
    "Prepare",
    "QuorumSet",
    "QuorumSetError",
    "ScpConfig",
    "Value",
    "is_quorum",
    "is_v_blocking",
    "parse_quorum_set",
]
