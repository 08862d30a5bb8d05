"""The node.toml reference is generated from what the parser reads and cannot drift: the
checked-in docs/CONFIG.md equals it, a key without a meaning (or a meaning without a key)
fails it, and the README's node.toml and network file examples parse. Also `mcnode config
check`, and the errors an operator meets first (network_file, no ledger)."""

from __future__ import annotations

import itertools
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcnode.cli import main
from mcnode.crypto import SeededRandom
from mcnode.localnet.init import init_network
from mcnode.node import config_reference
from mcnode.node.config import ConfigError, check_network_intersection, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_reference_is_what_the_code_generates() -> None:
    generated = config_reference.reference()
    assert (ROOT / "docs" / "CONFIG.md").read_text() == generated, (
        "docs/CONFIG.md is stale: run `mcnode config reference --out docs/CONFIG.md`"
    )


def test_every_key_the_parser_reads_is_in_the_reference_with_its_default() -> None:
    text = config_reference.reference()
    reads = config_reference.setting_reads()
    assert len(reads) > 60
    for r in reads:
        key = r.name.rpartition(".")[2]
        if config_reference._budget(r.name) is None:
            assert f"| `{key}` |" in text or r.name in config_reference.TABLES, r.name
    # defaults are the parser's (the dataclasses'), not copies
    assert "| `nomination_timeout` | number | `2.0` |" in text
    assert "| `pending_txs` | integer | `10000` |" in text
    assert "| `auth` | `20` | `40` | `131072` | `262144` |" in text


def test_a_key_without_a_meaning_or_a_meaning_without_a_key_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = dict(config_reference.KEYS)
    del keys["scp.ballot_timeout"]
    monkeypatch.setattr(config_reference, "KEYS", keys)
    with pytest.raises(config_reference.ConfigReferenceError, match=r"no meaning for scp\.ballot"):
        config_reference.reference()
    keys = {**config_reference.KEYS, "scp.ballot_timeout": (None, "x"), "scp.gone": (None, "")}
    monkeypatch.setattr(config_reference, "KEYS", keys)
    with pytest.raises(config_reference.ConfigReferenceError, match="not read by the parser: scp"):
        config_reference.reference()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("net")
    init_network(
        d, nodes=4, accounts=2, outputs_per_account=6, rng=SeededRandom(3), attestation=False
    )
    return d


def test_network_file_example_is_read_and_a_node_toml_there_is_refused_saying_so(
    net: Path, tmp_path: Path
) -> None:
    d = net
    cfg = load_config(d / "node0" / "node.toml")
    example = tmp_path / "example.json"
    example.write_text(config_reference.network_file_example())
    ok = replace(cfg, name="alice", network_file=example)
    assert check_network_intersection(ok) is None
    wrong = replace(cfg, network_file=d / "node1" / "node.toml")
    with pytest.raises(ConfigError) as e:
        check_network_intersection(wrong)
    msg = str(e.value)
    assert "is a TOML file (a node.toml?), not JSON" in msg
    assert '{"nodes": [{"id": "alice", "quorum_set":' in msg and "docs/CONFIG.md" in msg


def test_config_check_passes_a_localnet_node_and_names_a_missing_ledger(net: Path) -> None:
    config = str(net / "node3" / "node.toml")
    ok = CliRunner().invoke(main, ["config", "check", "--config", config])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("ok: node3: quorum set") and "ledger: 1 blocks" in ok.stdout
    shutil.rmtree(net / "node3" / "ledger")
    bad = CliRunner().invoke(main, ["config", "check", "--config", config])
    assert bad.exit_code == 2
    assert "no ledger here" in bad.stderr and "`mcnode ledger init`" in bad.stderr
    assert "copy the network's origin ledger" in bad.stderr


def _readme_block(heading: str, lang: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    m = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert m, f"no {lang} block under {heading}"
    return m.group(1)


def test_readme_node_toml_parses(tmp_path: Path) -> None:
    """The walk-through's node.toml (placeholders filled in) is a valid config."""
    text = _readme_block("## Run a validator", "toml")
    text = text.replace("<64 hex>", "ab" * 32)
    keys = (f"{i:02x}" * 32 for i in itertools.count(1))  # each peer its own
    text = re.sub(r"consensus-msg-key=<[^>]+>", lambda _: "consensus-msg-key=" + next(keys), text)
    text = re.sub(r"<[^>]+>", "x", text)
    (tmp_path / "node.key").write_bytes(b"")
    cfg = parse_config(text, tmp_path / "node.toml")
    assert cfg.attestation.mode == "sim" and len(cfg.peers) >= 3
