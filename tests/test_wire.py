"""The committed generated code matches proto/ (regenerate: see mcnode/wire/__init__.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_matches_schemas(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "proto" / "mcnode" / "wire" / "consensus.proto"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    for name in ("consensus_pb2.py", "consensus_pb2.pyi", "consensus_pb2_grpc.py"):
        fresh = (tmp_path / "mcnode" / "wire" / name).read_text()
        committed = (ROOT / "src" / "mcnode" / "wire" / name).read_text()
        assert fresh == committed, f"{name} is stale: regenerate it"


def test_messages_round_trip() -> None:
    from mcnode.wire import consensus_pb2 as pb

    m = pb.ConsensusMsg(
        scp_msg=b"\x01abc", prev_block_id=b"p" * 32, signer=b"s" * 32, signature=b"g" * 64
    )
    assert pb.ConsensusMsg.FromString(m.SerializeToString()) == m
