"""node.toml: every bad configuration stops with one line naming the field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mcnode.client.wallet import DEFAULT_FEE
from mcnode.node.archives import ArchiveUrl
from mcnode.node.config import (
    Budget,
    ConfigError,
    RateLimits,
    load_config,
    parse_config,
    peer_uri,
)
from mcnode.scp import QuorumSet
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

KEY = "ab" * 32


def write(tmp: Path, body: str, key: bool = True) -> Path:
    if key:
        (tmp / "node.key").write_text("{}")
    p = tmp / "node.toml"
    p.write_text(body)
    return p


def base(**over: str) -> str:
    parts = {
        "head": 'name = "a"\nkey_file = "node.key"\n',
        "qset": 'quorum_set = { threshold = 2, members = ["b", "c", "d"] }\n',
        "listen": '[listen]\npeer = "127.0.0.1:7001"\nclient = "127.0.0.1:7101"\n',
        "peers": "".join(
            f'[[peers]]\nname = "{n}"\nuri = "mcp://127.0.0.1:{7002 + i}/?consensus-msg-key='
            f'{(KEY[:-2] + f"{i:02x}")}"\ntls_cert = "peers/{n}.pem"\n'
            for i, n in enumerate("bcd")
        ),
        "extra": "",
    }
    parts.update(over)
    return parts["head"] + parts["qset"] + parts["listen"] + parts["extra"] + parts["peers"]


def test_good_config_uses_every_key(tmp_path: Path) -> None:
    extra = (
        "[limits]\npending_txs = 5\nvalues_per_slot = 7\nmax_txs_per_block = 9\n"
        "max_message_bytes = 100000\nclient_connections = 3\npeer_connections = 4\n"
        "[rate_limits]\nmax_sources = 100\nauth = { calls = 1, burst = 2, bytes = 3, "
        "bytes_burst = 4 }\nauth_all = { calls = 5 }\npropose_tx = { bytes = 6.5 }\n"
        "peer_msgs = { burst = 7 }\npeer_calls = {}\nblockchain = { calls = 8 }\n"
        "other = { bytes_burst = 9 }\n"
        "[scp]\nnomination_timeout = 0.5\nnomination_timeout_increment = 0.25\n"
        "ballot_timeout = 0.75\nballot_timeout_increment = 0.1\n"
        "vote_own_values = false\nlate_candidates = false\n"
        "[block]\nmin_interval = 1.5\nmin_fee = 10\n"
        '[archive]\nsources = ["arch", "HTTPS://Mirror.example:8443/a/b"]\nexport = "out"\n'
    )
    cfg = load_config(write(tmp_path, base(extra=extra)))
    assert cfg.name == "a" and [p.name for p in cfg.peers] == ["b", "c", "d"]
    assert cfg.limits.values_per_slot == 7 and cfg.limits.max_message_bytes == 100000
    assert cfg.scp.ballot_timeout == 0.75 and cfg.scp.nomination_timeout_increment == 0.25
    assert cfg.scp.vote_own_values is False and cfg.scp.late_candidates is False
    assert cfg.min_block_interval == 1.5 and cfg.min_fee == 10
    assert cfg.archive_sources == (
        tmp_path / "arch",
        ArchiveUrl("https://Mirror.example:8443/a/b/"),  # a directory: '/' added
    )
    assert cfg.archive_export == tmp_path / "out"
    assert str(cfg.admin_listen) == "127.0.0.1:7201"  # admin defaults to loopback
    assert cfg.peers[0].signing_key == bytes.fromhex(KEY[:-2] + "00")
    assert cfg.peers[1].tls_cert == tmp_path / "peers" / "c.pem"
    assert (cfg.tls_key, cfg.tls_cert) == (tmp_path / "tls.key", tmp_path / "tls.pem")
    assert (cfg.limits.client_connections, cfg.limits.peer_connections) == (3, 4)
    rl, d = cfg.rate_limits, RateLimits()
    assert rl.max_sources == 100
    assert rl.auth == Budget(1, 2, 3, 4)
    assert rl.auth_all == replace(d.auth_all, calls=5)  # the rest keep their defaults
    assert rl.propose_tx == replace(d.propose_tx, bytes=6.5)
    assert rl.peer_msgs == replace(d.peer_msgs, burst=7) and rl.peer_calls == d.peer_calls
    assert rl.blockchain.calls == 8 and rl.other.bytes_burst == 9


def test_rate_limits_default_when_absent(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base()))
    assert cfg.rate_limits == RateLimits() and cfg.rate_limits.auth.calls == 20


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        (
            {"qset": 'quorum_set = { threshold = 2, members = ["b", "c", "x"] }\n'},
            "quorum_set: 'x' is not one of the [[peers]]",
        ),
        (
            {"qset": 'quorum_set = { threshold = 4, members = ["b", "c", "d"] }\n'},
            "quorum_set: threshold 4 exceeds",
        ),
        ({"qset": 'quorum_set = { threshold = 1, members = ["b", "c", "d"] }\n'}, "not a majority"),
        (
            {"qset": 'quorum_set = { threshold = 2, members = ["b", "b", "c"] }\n'},
            "appears more than once",
        ),
        (
            {
                "peers": '[[peers]]\nname = "a"\nuri = "mcp://127.0.0.1:1/?consensus-msg-key='
                + KEY
                + '"\ntls_cert = "x.pem"\n'
            },
            "peers[0].name: 'a' is this node itself",
        ),
        (
            {
                "peers": (
                    '[[peers]]\nname = "b"\nuri = "mcp://127.0.0.1:1/?consensus-msg-key='
                    + KEY
                    + '"\ntls_cert = "x.pem"\n'
                )
                * 2
            },
            "duplicate peer name 'b'",
        ),
        ({"peers": '[[peers]]\nname = "b"\nuri = "http://x"\n'}, "peers[0].uri"),
        ({"extra": "surprise = 1\n"}, "listen.surprise: unknown setting"),
        ({"extra": "[limits]\npending_txs = 0\n"}, "limits.pending_txs: must be positive"),
        ({"extra": "[scp]\nballot_timeout = -1\n"}, "scp: ballot_timeout must be positive"),
        ({"extra": '[scp]\nlate_candidates = "yes"\n'}, "scp.late_candidates: expected"),
        ({"extra": "[limits]\npeer_connections = 0\n"}, "limits.peer_connections: must be"),
        ({"extra": "[rate_limits]\nauth = { rate = 1 }\n"}, "rate_limits.auth.rate: unknown"),
        ({"extra": "[rate_limits]\nspeed = 1\n"}, "rate_limits.speed: unknown setting"),
        (
            {"extra": "[rate_limits]\npeer_msgs = { calls = -1 }\n"},
            "rate_limits.peer_msgs.calls: must be positive",
        ),
        (
            {"extra": "[rate_limits]\nother = { burst = 0.5 }\n"},
            "rate_limits.other.burst: must be at least 1",
        ),
        (
            {"extra": '[rate_limits]\nauth = { calls = "many" }\n'},
            "rate_limits.auth.calls: expected a number, got 'many'",
        ),
        ({"extra": "[rate_limits]\nauth = 5\n"}, "rate_limits.auth: expected a table"),
        ({"extra": "[rate_limits]\nmax_sources = 1\n"}, "rate_limits.max_sources: must be"),
        ({"extra": '[block]\nmin_fee = "cheap"\n'}, "block.min_fee: expected an integer"),
        (
            {"listen": '[listen]\npeer = "127.0.0.1:99999"\nclient = "1"\n'},
            "listen.peer: port 99999 out of range",
        ),
        ({"head": 'key_file = "node.key"\n'}, "name: missing"),
        *(
            ({"extra": f"[archive]\nsources = {sources}\n"}, needle)
            for sources, needle in [
                ('["ftp://x/a"]', "archive.sources[0]: 'ftp://x/a': unsupported scheme 'ftp'"),
                ('["d", "file:///srv/a"]', "archive.sources[1]: 'file:///srv/a': unsupported"),
                ('["http:/x"]', "archive.sources[0]: 'http:/x': expected http://HOST"),
                ('["https://"]', "archive.sources[0]: 'https://': expected https://HOST"),
                ('["http://h:99999/"]', "archive.sources[0]: 'http://h:99999/': Port out of"),
                ('["http://u:pw@h/"]', "archive.sources[0]: h: credentials in the URL"),
                ('["http://h/a?x=1"]', "no query or fragment"),
                ('["http://h/a b"]', "spaces or control characters"),
                ('["http://[zz/"]', "archive.sources[0]: 'http://[zz/'"),
                ('[""]', "archive.sources[0]: empty"),
                ("[3]", "archive.sources[0]: expected a directory or an http(s):// URL, got 3"),
                ('"a"', "archive.sources: expected a list"),
                ('["http://h/a", "http://h/a/"]', "archive.sources[1]: 'http://h/a/' is listed"),
            ]
        ),
        (
            {
                "qset": 'quorum_set = { threshold = 2, members = ["b", { threshold = "x", '
                'members = ["c", "d"] }] }\n'
            },
            "quorum_set.members[1].threshold: expected a non-negative integer, got 'x'",
        ),
        (
            {
                "qset": 'quorum_set = { threshold = 2, members = ["b", { threshold = 3, '
                'members = ["c", "d"] }] }\n'
            },
            "quorum_set.members[1]: threshold 3 exceeds the 2 members",
        ),
        ({"qset": "quorum_set = { threshold = 2 }\n"}, "quorum_set.members: missing"),
        (
            {"qset": 'quorum_set = { threshold = 2, members = ["b", "c"], t = 1 }\n'},
            "quorum_set.t: unknown quorum set key",
        ),
    ],
)
def test_bad_config_one_line_naming_the_field(
    tmp_path: Path, over: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, base(**over)))
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg


def test_min_fee_defaults_to_the_one_minimum_fee(tmp_path: Path) -> None:
    """One value, one place: the consensus rule's default, which the wallet pays too."""
    assert DEFAULT_MINIMUM_FEE == 400_000_000  # MobileCoin's 400 µMOB, in picoMOB
    assert load_config(write(tmp_path, base())).min_fee == DEFAULT_MINIMUM_FEE
    assert DEFAULT_FEE == DEFAULT_MINIMUM_FEE


def test_quorum_set_members_in_mobilecoin_form(tmp_path: Path) -> None:
    """The one quorum-set parser also reads MobileCoin's tagged members."""
    qset = (
        'quorum_set = { threshold = 2, members = [{ type = "Node", args = "b" }, '
        '{ type = "InnerSet", args = { threshold = 2, members = ["c", "d"] } }] }\n'
    )
    cfg = load_config(write(tmp_path, base(qset=qset)))
    assert cfg.quorum_set == QuorumSet(2, ["b", QuorumSet(2, ["c", "d"])])


def test_unsafe_threshold_allowed_when_asked(tmp_path: Path) -> None:
    body = base(
        head='name = "a"\nkey_file = "node.key"\nallow_unsafe_quorum = true\n',
        qset='quorum_set = { threshold = 1, members = ["b", "c", "d"] }\n',
    )
    # Read while parsing only (it lets the threshold through); nothing needs it later.
    assert load_config(write(tmp_path, body)).quorum_set == QuorumSet(1, ["b", "c", "d"])


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key_file: .* does not exist"):
        load_config(write(tmp_path, base(), key=False))


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("name = ", tmp_path / "node.toml")


def test_peer_uri_round_trip() -> None:
    from mcnode.node.config import parse_peer_uri

    key = bytes(range(32))
    assert parse_peer_uri(peer_uri("10.0.0.1", 7001, key), "x") == ("10.0.0.1", 7001, key, None)
    with_frames = peer_uri("10.0.0.1", 7001, key, 7301)
    assert with_frames.endswith("&consensus-port=7301")
    assert parse_peer_uri(with_frames, "x") == ("10.0.0.1", 7001, key, 7301)


@pytest.mark.parametrize("bad", ["0", "65536", "x", "7301&consensus-port=7302", ""])
def test_peer_uri_bad_consensus_port(bad: str) -> None:
    from mcnode.node.config import parse_peer_uri

    uri = peer_uri("10.0.0.1", 7001, bytes(range(32))) + f"&consensus-port={bad}"
    with pytest.raises(ConfigError, match="consensus-port must be one port number"):
        parse_peer_uri(uri, "x")


def test_run_with_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    p = write(tmp_path, base(qset='quorum_set = { threshold = 2, members = ["b", "zz"] }\n'))
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "run", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "quorum_set: 'zz' is not one of the [[peers]]" in lines[0]


def test_keygen_writes_0600_key_and_prints_uri(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "keygen", "--out", str(tmp_path), "--port", "7005"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "node.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
    from mcnode.node.keys import read_node_key
    from mcnode.node.tls import read_tls_identity

    read_tls_identity(
        tmp_path / "tls.key", tmp_path / "tls.pem", read_node_key(tmp_path / "node.key")
    )
    uri = r.stdout.strip().splitlines()[-1]
    assert uri.startswith("mcp://127.0.0.1:7005/?consensus-msg-key=") and len(uri) == 40 + 64
    again = subprocess.run(
        [sys.executable, "-m", "mcnode", "keygen", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode != 0 and "exists" in again.stderr


def test_run_refuses_a_network_without_quorum_intersection(tmp_path: Path) -> None:
    import json

    from mcnode.node.config import check_network_intersection

    def qs(t: int, *m: str) -> dict[str, object]:
        return {"threshold": t, "members": list(m)}

    # {b, c} and {d, e} are disjoint quorums (a's own set comes from node.toml).
    split = [
        ("a", qs(2, "b", "c", "d")),
        ("b", qs(1, "c")),
        ("c", qs(1, "b")),
        ("d", qs(1, "e")),
        ("e", qs(1, "d")),
    ]
    (tmp_path / "net.json").write_text(
        json.dumps({"nodes": [{"id": i, "quorum_set": q} for i, q in split]})
    )
    p = write(tmp_path, base(head='name = "a"\nkey_file = "node.key"\nnetwork_file = "net.json"\n'))
    (tmp_path / "node.key").chmod(0o600)
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "run", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no quorum intersection" in lines[0], r.stderr
    assert "--force" in lines[0]
    # A BFT mesh of a, b, c, d intersects: no objection.
    mesh = [(x, qs(2, *[y for y in "abcd" if y != x])) for x in "abcd"]
    (tmp_path / "net.json").write_text(
        json.dumps({"nodes": [{"id": i, "quorum_set": q} for i, q in mesh]})
    )
    assert check_network_intersection(load_config(p)) is None


MR = "cd" * 32


def test_attestation_section_sim_with_defaults_and_every_key(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, base())).attestation.mode == "off"  # absent: off
    extra = f'[attestation]\nmode = "sim"\nsim_pki = "pki"\ntrusted_mrenclaves = ["{MR}"]\n'
    a = load_config(write(tmp_path, base(extra=extra))).attestation
    assert a.on and a.network == "mcnode" and a.root_ca == tmp_path / "pki" / "root-ca.pem"
    assert a.trusted_mrenclaves == (bytes.fromhex(MR),) and a.css is None
    extra = (
        '[attestation]\nmode = "sim"\nnetwork = "testnet"\nsim_pki = "p"\nroot_ca = "r.pem"\n'
        f'css = "e.css"\ntrusted_mrsigner = "{MR}"\nisv_prod_id = 2\nmin_isv_svn = 3\n'
        'allowed_statuses = ["OutOfDate"]\nallowed_advisories = ["INTEL-SA-00615"]\n'
        "valid_days = 7\n"
    )
    a = load_config(write(tmp_path, base(extra=extra))).attestation
    assert (a.network, a.root_ca, a.css, a.valid_days) == (
        "testnet",
        tmp_path / "r.pem",
        tmp_path / "e.css",
        7,
    )
    assert (a.trusted_mrsigner, a.isv_prod_id, a.min_isv_svn) == (bytes.fromhex(MR), 2, 3)
    assert a.allowed_statuses == ("OutOfDate",) and a.allowed_advisories == ("INTEL-SA-00615",)


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ('mode = "sgx"\n', "attestation.mode: 'sgx' is not one of off, sim, dcap"),
        ('mode = "dcap"\n', "attestation.mode: dcap needs SGX hardware"),
        ('mode = "sim"\ntrusted_mrenclaves = ["' + MR + '"]\n', "attestation.sim_pki: mode sim"),
        ('mode = "sim"\nsim_pki = "p"\n', "attestation: a policy must name trusted MRENCLAVEs"),
        ('mode = "sim"\nsim_pki = "p"\ntrusted_mrenclaves = ["abc"]\n', "trusted_mrenclaves[0]"),
        (
            f'mode = "sim"\nsim_pki = "p"\ntrusted_mrsigner = "{MR}"\n',
            "attestation: an MRSIGNER policy needs isv_prod_id and min_isv_svn",
        ),
        (
            f'mode = "sim"\nsim_pki = "p"\ntrusted_mrenclaves = ["{MR}"]\n'
            'allowed_statuses = ["Revoked"]\n',
            "attestation: TCB status Revoked can never be allowed",
        ),
        ("valid_days = 0\n", "attestation.valid_days: must be 1..366"),
        ("surprise = 1\n", "attestation.surprise: unknown setting"),
    ],
)
def test_bad_attestation_sections_stop_with_one_line(
    tmp_path: Path, section: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, base(extra="[attestation]\n" + section)))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_node_votes_own_values_and_takes_late_candidates_by_default(tmp_path: Path) -> None:
    # Not the draft's defaults (ScpConfig's): the node's, chosen in README "Real network
    # conditions".
    cfg = load_config(write(tmp_path, base()))
    assert cfg.scp.vote_own_values is True and cfg.scp.late_candidates is True
