"""The `node.toml` reference (docs/CONFIG.md), generated from what the parser reads.

`node.config.parse_config(..., reads=...)` records every key it asks for, with the type
and default it asks with; this module runs it on a small config and writes one row per
key, with the meaning written here. So the keys, types and defaults come from the parser
itself, and a key added to the parser without a meaning here (or a meaning left here for a
key the parser no longer reads) fails `reference()` and its test; tests/test_config_reference
also holds docs/CONFIG.md equal to `reference()`.

Rules of this file: no I/O but the scratch directory the parse needs (the parser checks
that `key_file` exists); nothing here changes how a config is parsed.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mcnode.node.config import BUDGET_NAMES, SettingRead, parse_config

#: What each table is for (its heading's paragraph).
TABLES: dict[str, str] = {
    "": "Who this validator is and where its files are.",
    "listen": "Where the node listens. `HOST:PORT`; a bare port means 127.0.0.1; "
    "`[::]:PORT` or `0.0.0.0:PORT` for every address.",
    "peers": "One `[[peers]]` table per validator this node talks to (its quorum set "
    "members, and any other peer it relays to). All three keys are required in each.",
    "archive": "Archives: where to catch up from when no peer has the blocks, and where "
    "to publish ours.",
    "limits": "Sizes and counts that bound what the node holds.",
    "rate_limits": "What one source address (IPv6: one /64; on the peer port, one "
    "configured peer) may ask of the node (`node/gate.py`): token buckets per method "
    "class, charged before a request is parsed. Over budget is `RESOURCE_EXHAUSTED` (a "
    "stream ends). The defaults are meant to be the only ones: an honest peer or wallet "
    "stays well inside them.",
    "scp": "SCP timers. A nomination round r lasts `nomination_timeout + (r - 1) * "
    "nomination_timeout_increment`; the ballot timer for counter n fires after "
    "`ballot_timeout + (n - 1) * ballot_timeout_increment`. The defaults are the SCP "
    'draft\'s "1 + n seconds" (2, 3, 4, ... s: `scp.ScpConfig`). `mcnode localnet` writes '
    "0.25 + 0.25 s and 0.5 + 0.5 s into its node.tomls (loopback round trips are well "
    "under a millisecond), and `localnet --netns` scales those with the round trip. For a "
    "real network keep nomination_timeout at least 2.5 x and ballot_timeout at least 5 x "
    "the largest round trip to a quorum member: the defaults cover round trips up to "
    "400 ms. A stalled slot re-sends our last message every ballot_timeout.",
    "block": "Blocks and fees. A block is made only when a payment waits (there are no "
    "empty blocks: a block without outputs is invalid), so an idle network's height does "
    "not move.",
    "attestation": "What our enclave proves to others and what we require of theirs. "
    'Absent: mode "off" (warned at start; attested peers and wallets refuse such a node).',
}

#: (type shown, meaning) of each key, by its dotted name (`peers.uri`: a key of every
#: [[peers]] table). A type of None shows the parser's own ("string", "integer", ...).
KEYS: dict[str, tuple[str | None, str]] = {
    "name": (
        None,
        "This validator's name (1..256 bytes, no spaces): what peers write in their "
        "`[[peers]] name` and quorum sets. Logs and `/status` (`node_id`) use it.",
    ),
    "key_file": (
        "path",
        "The consensus-message key (Ed25519) from `mcnode keygen`, mode 0600 (refused if "
        "group or others can read it). Its public half is the `consensus-msg-key` of the "
        "peer URI peers configure; SCP messages are signed with it.",
    ),
    "tls_key": (
        "path",
        "The peer port's TLS private key (P-256, mode 0600), from `mcnode keygen`.",
    ),
    "tls_cert": (
        "path",
        "The peer port's TLS certificate, vouched for by key_file's key: give it to your "
        "peers, who pin it (`[[peers]] tls_cert`).",
    ),
    "ledger_dir": (
        "path",
        "The ledger (one LMDB environment). It must hold the network's origin ledger "
        "before the first start: `mcnode ledger init` once for the network, then a copy of "
        "that directory on every validator.",
    ),
    "state_dir": (
        "path",
        "The node's own state: SCP restart state, `block-signers.json` (the block signers "
        "it accepts), and the enclave's sealed keys in `enclave/`. Back it up; created if "
        "missing.",
    ),
    "allow_unsafe_quorum": (
        None,
        "Start although a threshold of the quorum set is not a majority at some level "
        "(two disjoint groups could each reach it).",
    ),
    "network_file": (
        "path",
        "Optional: the whole network's quorum sets, as JSON (format below). `mcnode run` "
        "then refuses to start (exit 2; `--force` overrides) unless every two quorums of "
        "that network intersect, our own quorum set taking precedence for us.",
    ),
    "listen": ("table", ""),
    "listen.peer": (
        "HOST:PORT",
        "The peer port: validators connect here over mutual TLS (only holders of a "
        "certificate configured in `[[peers]]`).",
    ),
    "listen.client": (
        "HOST:PORT",
        "The client port: wallets propose payments (Noise sessions with the enclave) and "
        "read blocks here.",
    ),
    "listen.admin": (
        "HOST:PORT",
        "Admin HTTP (`/`, `/status`, `/metrics`, `/scp/<slot>`, `POST /loglevel`, ...). "
        "No authentication: keep it on loopback.",
    ),
    "listen.consensus": (
        "HOST:PORT",
        "The consensus port (optional): peers send their SCP messages here as "
        "length-prefixed frames over mutual TLS with the peer port's certificates, at "
        "about a third of the gRPC stream's CPU per message. Name its port in the URI you "
        "hand peers (`&consensus-port=`); without it they use the peer port's gRPC stream.",
    ),
    "peers": ("[[peers]] tables", ""),
    "peers.name": (
        None,
        "The peer's name, as its own node.toml says (`name`) and as quorum sets name it.",
    ),
    "peers.uri": (
        None,
        "`mcp://HOST:PORT/?consensus-msg-key=<64 hex>[&consensus-port=PORT]`, printed by "
        "the peer's `mcnode keygen`: where its peer port is, the Ed25519 key its messages "
        "must be signed with, and its consensus port if it has one (our SCP messages go "
        "there; otherwise on the peer port's gRPC stream).",
    ),
    "peers.tls_cert": (
        "path",
        "The peer's `tls.pem`: pinned, so only that peer can connect as it. A node refuses "
        "to start with a certificate its key does not vouch for.",
    ),
    "quorum_set": (
        "table",
        "`{ threshold = T, members = [...] }`: the peers this node needs to agree with "
        "(itself implied). Members are peer names or nested sets (at most 4 deep), or "
        'MobileCoin\'s `{ type = "Node", args = "bob" }` / `{ type = "InnerSet", args = '
        "{ threshold, members } }`. Every name must be one of `[[peers]]`; each threshold "
        "must be a majority of its members unless `allow_unsafe_quorum`.",
    ),
    "archive": ("table", ""),
    "archive.sources": (
        "list of paths or URLs",
        "Archives to catch up from when no peer has the blocks we lack, tried in order: "
        "directories (written by another node's `export` or `mcnode ledger export`) or "
        "`http://`/`https://` URLs of such a directory served by any static web server "
        '(README, "Archives over HTTP"). Every block is checked as any append is.',
    ),
    "archive.export": (
        "path",
        "Write every new block here as an archive (served as it is by any static web "
        "server). Not set: no archive.",
    ),
    "limits": ("table", ""),
    "limits.pending_txs": (
        None,
        "Payments held waiting for a block; past it, new ones are refused `OVER_CAPACITY`.",
    ),
    "limits.values_per_slot": (None, "Pending payments nominated in one slot, oldest first."),
    "limits.max_txs_per_block": (None, "Payments in one block, at most."),
    "limits.max_message_bytes": (
        None,
        "The largest gRPC message sent or received, and the largest consensus message "
        "accepted (at least 65536).",
    ),
    "limits.client_connections": (None, "Open connections to the client port, at most."),
    "limits.peer_connections": (None, "Open connections to the peer port, at most."),
    "rate_limits": ("table", ""),
    "rate_limits.max_sources": (
        None,
        "Source addresses remembered (16..1000000); the least recently seen is forgotten.",
    ),
    "scp": ("table", ""),
    "scp.nomination_timeout": (None, "Seconds: the first nomination round's length."),
    "scp.nomination_timeout_increment": (None, "Seconds added for each later round."),
    "scp.ballot_timeout": (None, "Seconds: the ballot timer for counter 1."),
    "scp.ballot_timeout_increment": (None, "Seconds added for each later counter."),
    "scp.vote_own_values": (
        None,
        "Vote for our own pending txs in every nomination round, not only in rounds we "
        "lead (the SCP draft's rule). Nomination plays no part in safety; with one value "
        "per tx, every node holding a tx votes it at once, so a candidate takes two one-way "
        "delays instead of three and a leader with nothing to propose costs no round "
        "timeout. false: the draft's rule.",
    ),
    "scp.late_candidates": (
        None,
        "A candidate confirmed after our ballot started, while nothing of that ballot is "
        "prepared yet (no prepared ballot), replaces it: we move to the next counter with "
        "the new composite, as a ballot timeout would, at once. A tx that reached the last "
        "validators a moment late then joins this slot instead of waiting a whole slot, "
        "and validators whose ballots differ meet within a message delay instead of after "
        "a ballot timeout. Candidates only accumulate, so this happens once per new "
        "candidate at most. Likewise a ballot whose value differs from one a quorum has "
        "confirmed prepared moves at once to the next counter with that value, which the "
        "ballot timer would do later: it mends the split a late candidate can make (some "
        "validators moved to a bigger composite just before learning that the others had "
        "prepared the smaller one), which otherwise waited ~1 s for the timer; once per "
        "slot (again only toward a value that a v-blocking set already votes to commit), "
        "and never for a confirmation older than a ballot we accepted prepared. "
        "Abandoning a ballot is always safe. false: the SCP draft's rules.",
    ),
    "block": ("table", ""),
    "block.min_interval": (
        None,
        "Seconds between two blocks, at least (0: nominate as soon as a payment waits; "
        "payments arriving meanwhile share the next block).",
    ),
    "block.min_fee": (
        None,
        "The smallest fee accepted, in picoMOB (the default is MobileCoin's 400 uMOB, "
        "`transaction.validation.DEFAULT_MINIMUM_FEE`). Part of the network's identity: "
        "enclaves of validators with another min_fee cannot pair.",
    ),
    "attestation": ("table", ""),
    "attestation.mode": (
        None,
        '"off", "sim" (simulated SGX evidence under the network\'s own PKI: no hardware '
        'protection) or "dcap" (SGX hardware: refused by this build).',
    ),
    "attestation.network": (
        None,
        "The network's name (1..64 bytes), bound into every peer handshake: enclaves of "
        "networks named differently cannot pair.",
    ),
    "attestation.sim_pki": (
        "path",
        "sim: the network's simulated PKI directory (`mcnode attest sim-pki init`), the "
        "same on every validator. Required in mode sim.",
    ),
    "attestation.root_ca": (
        "path",
        "The root peers' evidence must chain to (sim default: `<sim_pki>/root-ca.pem`).",
    ),
    "attestation.css": (
        "path",
        "The release's signed measurement (`mcnode enclave sign`): the enclave starts only "
        "if it signs this build.",
    ),
    "attestation.trusted_mrenclaves": (
        "list of 64-hex strings",
        "Enclave builds trusted in peers (`mcnode enclave measure`). This and/or the next three.",
    ),
    "attestation.trusted_mrsigner": (
        "64-hex string",
        "A release signer trusted in peers, with isv_prod_id and min_isv_svn.",
    ),
    "attestation.isv_prod_id": (None, "The product id a trusted_mrsigner build must carry."),
    "attestation.min_isv_svn": (
        None,
        "The lowest security version of a trusted_mrsigner build accepted.",
    ),
    "attestation.allowed_statuses": (
        "list of strings",
        "TCB statuses accepted besides `UpToDate` (`Revoked` never is).",
    ),
    "attestation.allowed_advisories": (
        "list of strings",
        "Advisory ids accepted; every advisory of an accepted status must be listed.",
    ),
    "attestation.valid_days": (
        None,
        "sim: the validity window, in days (1..366), of the collateral our enclave issues.",
    ),
}

#: The four numbers of every `[rate_limits.<budget>]` table.
BUDGET_KEYS: dict[str, str] = {
    "calls": "calls per second (each message of a stream is one)",
    "burst": "calls at once (the bucket's size; at least 1)",
    "bytes": "request bytes per second",
    "bytes_burst": "request bytes at once",
}

#: What each budget limits.
BUDGETS: dict[str, str] = {
    "auth": "client `Auth` (a handshake with the enclave: a DH each)",
    "auth_all": "`Auth` from all sources together",
    "propose_tx": "client `ProposeTx`",
    "peer_msgs": "a peer's consensus messages (`ConsensusStream`, `SendConsensusMsg`)",
    "peer_calls": "a peer's other calls (enclave sessions, tx relay and fetch)",
    "blockchain": "`GetLastBlockInfo`, `GetBlocks` (either port)",
    "other": "`GetNodeConfig`, health checks",
}

_KINDS = {
    "a string": "string",
    "an integer": "integer",
    "a number": "number",
    "true/false": "boolean",
    "a table": "table",
    "a list": "list",
}

_SAMPLE = """name = "alice"
key_file = "node.key"
quorum_set = { threshold = 1, members = ["bob"] }
[listen]
peer = "127.0.0.1:7001"
client = "127.0.0.1:7101"
[[peers]]
name = "bob"
uri = "mcp://127.0.0.1:7002/?consensus-msg-key=%s"
tls_cert = "peers/bob.pem"
""" % ("11" * 32)

NETWORK_FILE_EXAMPLE: dict[str, Any] = {
    "nodes": [
        {"id": "alice", "quorum_set": {"threshold": 2, "members": ["bob", "carol", "dave"]}},
        {"id": "bob", "quorum_set": {"threshold": 2, "members": ["alice", "carol", "dave"]}},
        {"id": "carol", "quorum_set": {"threshold": 2, "members": ["alice", "bob", "dave"]}},
        {"id": "dave", "quorum_set": {"threshold": 2, "members": ["alice", "bob", "carol"]}},
    ]
}


class ConfigReferenceError(ValueError):
    """The parser and this module's meanings disagree (a key without a meaning, or a
    meaning without a key)."""


def setting_reads() -> list[SettingRead]:
    """Every key `parse_config` reads, in its order."""
    reads: list[SettingRead] = []
    with tempfile.TemporaryDirectory(prefix="mcnode-config-") as d:
        (Path(d) / "node.key").write_bytes(b"")  # the parser checks only that it exists
        parse_config(_SAMPLE, Path(d) / "node.toml", reads=reads)
    return reads


def _budget(name: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"rate_limits\.(\w+)(?:\.(\w+))?", name)
    if m is None or m.group(1) not in BUDGET_NAMES:
        return None
    return m.group(1), m.group(2) or ""


def _check(reads: Iterable[SettingRead]) -> None:
    names = {r.name for r in reads if _budget(r.name) is None}
    undocumented = sorted(names - set(KEYS))
    stale = sorted(set(KEYS) - names)
    budgets = {b for r in reads if (b := _budget(r.name)) is not None}
    undocumented += sorted(
        f"rate_limits.{b}.{k}"
        for b, k in budgets
        if b not in BUDGETS or (k and k not in BUDGET_KEYS)
    )
    if undocumented or stale:
        raise ConfigReferenceError(
            "node/config_reference.py is out of step with node/config.py: "
            + (f"no meaning for {', '.join(undocumented)}; " if undocumented else "")
            + (f"not read by the parser: {', '.join(stale)}" if stale else "")
        )


def _value(v: Any) -> str:
    if v is ...:
        return "**required**"
    if v is None:
        return "not set"
    return f"`{json.dumps(v)}`"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def reference() -> str:
    """docs/CONFIG.md, as the code says it."""
    reads = setting_reads()
    _check(reads)
    by_table: dict[str, list[SettingRead]] = {}  # in the parser's order
    for r in reads:
        if _budget(r.name) is not None:
            continue
        if r.name in TABLES and r.kind in ("a table", "[[peers]] tables"):
            by_table.setdefault(r.name, [])  # the table itself: a heading, not a row
            continue
        by_table.setdefault(r.name.rpartition(".")[0], []).append(r)
    out = [
        "# node.toml reference",
        "",
        "<!-- Generated by `mcnode config reference` from src/mcnode/node/config.py and",
        "     src/mcnode/node/config_reference.py; tests/test_config_reference.py keeps this",
        "     file equal to it. Do not edit by hand. -->",
        "",
        "Every key `mcnode run --config node.toml` reads. Unknown keys are refused, and every",
        "mistake stops the node with one line naming the key (exit 2); `mcnode config check",
        "--config node.toml` checks a file without starting anything. Relative paths are",
        "relative to the directory of node.toml. A table left out takes every default.",
        "",
    ]
    for table, rows in by_table.items():
        title = (
            "Top level" if not table else f"`[[{table}]]`" if table == "peers" else f"`[{table}]`"
        )
        out += [f"## {title}", "", TABLES[table], ""]
        if rows:
            out += [_row(("key", "type", "default", "meaning")), _row(("---",) * 4)]
            for r in rows:
                kind, meaning = KEYS[r.name]
                key = r.name.rpartition(".")[2]
                out.append(
                    _row(
                        (f"`{key}`", kind or _KINDS.get(r.kind, r.kind), _value(r.default), meaning)
                    )
                )
            out.append("")
        if table == "rate_limits":
            out += _budget_table(reads)
    out += _network_file_section()
    return "\n".join(out)


def _budget_table(reads: list[SettingRead]) -> list[str]:
    values: dict[str, dict[str, Any]] = {}
    for r in reads:
        b = _budget(r.name)
        if b is not None and b[1]:
            values.setdefault(b[0], {})[b[1]] = r.default
    keys = list(BUDGET_KEYS)
    out = [
        "Each budget is a table `[rate_limits.<budget>]` (or an inline table, `auth = { calls",
        "= 20, burst = 40 }`) of up to four positive numbers; one left out keeps its default:",
        "",
        *(f"- `{k}`: {v}" for k, v in BUDGET_KEYS.items()),
        "",
        _row(("budget", *keys, "limits")),
        _row(("---",) * (len(keys) + 2)),
    ]
    for name, vals in values.items():
        out.append(_row((f"`{name}`", *(_value(vals[k]) for k in keys), BUDGETS[name])))
    return [*out, ""]


def network_file_example() -> str:
    """NETWORK_FILE_EXAMPLE as the reference prints it: one node a line."""
    nodes = ",\n".join(f"  {json.dumps(n)}" for n in NETWORK_FILE_EXAMPLE["nodes"])
    return '{"nodes": [\n' + nodes + "\n]}"


def _network_file_section() -> list[str]:
    return [
        "## The `network_file` format",
        "",
        "JSON, not TOML (a node.toml given as network_file is refused, saying so): the whole",
        "network's validators, each with the quorum set its operator configured, written as",
        "in node.toml (`threshold`, `members`: names or nested sets). This node must be",
        "listed; its own entry is replaced by node.toml's quorum set. Four validators, each",
        "needing two of the other three:",
        "",
        "```json",
        network_file_example(),
        "```",
        "",
        "Other fields are ignored, so `mcnode localnet`'s `network.json` is one, and so is a",
        "file that also carries the `attestation` entry wallets read (`mcnode client send",
        "--network`). A network explorer's JSON (a list of `publicKey`/`name`/`quorumSet`) is",
        "read too. `mcnode fbas check FILE` analyses the same file before you deploy it.",
        "",
    ]
