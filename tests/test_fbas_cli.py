"""`mcnode fbas ...`: exit codes, JSON shapes, node-config directories, pictures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcnode.cli import main

DATA = Path(__file__).resolve().parents[1] / "examples" / "networks"


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["fbas", *args])
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("sc_enjoys-intersection.json", 0),
        ("sc_no-intersection.json", 1),
        ("sc_bad-key.json", 2),
        ("sc_bad-threshold-type.json", 2),
        ("correct.json", 0),
        ("broken.json", 1),
        ("stellarbeat_nodes_2020-01-16_broken_by_hand.json", 1),
    ],
)
def test_check_exit_codes(name: str, code: int) -> None:
    exit_code, out, err = run("check", str(DATA / name))
    assert exit_code == code
    if code == 2:
        assert out == "" and len(err.strip().splitlines()) == 1


def test_check_json_shape_with_certificate() -> None:
    code, out, _ = run("check", "--json", str(DATA / "broken.json"))
    assert code == 1
    doc = json.loads(out)
    assert doc["intersection"] is False
    q1, q2 = doc["disjoint_quorums"]
    assert q1 and q2 and not set(q1) & set(q2)
    assert all({"node", "kind", "reason"} <= set(s) for s in doc["skipped"])


def test_blocking_splitting_top_tier_json() -> None:
    f = str(DATA / "stellar_pubnet_2025-07-20.json")
    code, out, _ = run("blocking", "--json", f)
    assert code == 0 and json.loads(out)["size"] == 6 and len(json.loads(out)["example"]) == 6
    code, out, _ = run("splitting", "--json", f)
    assert code == 0 and set(json.loads(out)) == {"size", "example"}
    code, out, _ = run("top-tier", "--json", f)
    assert code == 0 and json.loads(out)["size"] == 21


def test_text_output_groups_by_organization() -> None:
    code, out, _ = run(
        "top-tier",
        str(DATA / "stellarbeat_nodes_2019-09-17.json"),
        "--orgs",
        str(DATA / "stellarbeat_organizations_2019-09-17.json"),
    )
    assert code == 0
    assert "Stellar Development Foundation (3): SDF 3, SDF 1, SDF 2" in out  # input order


def test_graph_svg_and_png(tmp_path: Path) -> None:
    svg, png = tmp_path / "t.svg", tmp_path / "t.png"
    assert run("graph", str(DATA / "pf_conflicted.json"), "--out", str(svg))[0] == 0
    root = ET.fromstring(svg.read_text())
    fills = {c.get("fill") for c in root.iter("{http://www.w3.org/2000/svg}circle")}
    assert {"#d62728", "#1f77b4"} <= fills  # the disjoint quorums are coloured
    assert run("graph", str(DATA / "pf_conflicted.json"), "--out", str(png))[0] == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert run("graph", str(DATA / "pf_conflicted.json"), "--out", str(tmp_path / "t.gif"))[0] == 2


def test_node_config_directory(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    for me in ids:  # each trusts any one of the other three: {a, b} and {c, d} are quorums
        members = ", ".join(f'"{p}"' for p in ids if p != me)
        (tmp_path / f"{me}.toml").write_text(
            f'node_id = "{me}"\n[quorum_set]\nthreshold = 1\nmembers = [{members}]\n'
        )
    code, out, _ = run("check", str(tmp_path))
    assert code == 1 and "NO" in out
    code, out, _ = run("blocking", "--json", str(tmp_path))
    assert code == 0 and json.loads(out)["size"] == 3  # any two survivors form a quorum


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (
        ["check", str(bad)],
        ["check", str(tmp_path / "missing.json")],
        ["blocking", str(bad)],
        ["splitting", str(bad)],
        ["top-tier", str(bad)],
    ):
        code, out, err = run(*args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    (tmp_path / "x.toml").write_text("node_id = [")
    code, _, err = run("check", str(tmp_path))
    assert code == 2 and "not valid TOML" in err


def test_checks_a_localnet_directory_and_its_network_file(tmp_path: Path) -> None:
    """The analysis reads what `mcnode localnet init` writes: D/<node>/node.toml files (node
    id = `name`) and D/network.json."""
    from click.testing import CliRunner

    from mcnode.cli import main
    from mcnode.crypto import SeededRandom
    from mcnode.localnet.init import init_network

    init_network(tmp_path, nodes=4, accounts=2, outputs_per_account=1, rng=SeededRandom(1))
    for target in (tmp_path, tmp_path / "network.json"):
        r = CliRunner().invoke(main, ["fbas", "check", str(target), "--json"])
        assert r.exit_code == 0, r.output
        assert '"intersection": true' in r.output
    r = CliRunner().invoke(main, ["fbas", "blocking", str(tmp_path), "--json"])
    assert r.exit_code == 0 and '"size": 2' in r.output
