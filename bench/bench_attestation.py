"""What attestation evidence costs in the enclave's handshakes (plain script; prints
figures, asserts nothing).

    python bench/bench_attestation.py [--rounds N]

Makes a simulated PKI and two in-process `Enclave`s in mode "sim" (and two in mode
"off") on an empty ledger in a temporary directory, and times, per operation, the median
and p90 of wall time over N rounds:
- `quote`: one simulated quote (the enclave's share of evidence per handshake);
- `verify_evidence`: one quote and its collateral through dcap-qvl and the policy;
- a client handshake (Noise NX): the enclave's side alone (`client_handshake`, which
  quotes), and the whole (`connect`, `client_handshake`, `finish`, which verifies the
  evidence), with and without evidence;
- a peer handshake (Noise IX: `peer_initiate`, `peer_accept`, `peer_complete`, the two
  hosts' Ed25519 signatures included), with evidence both ways and without.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mcnode.attest.config import AttestationConfig
from mcnode.attest.evidence import Evidence
from mcnode.attest.policy import Policy, expected_report_data
from mcnode.attest.sim_pki import SimPki
from mcnode.attest.sim_quote import SimQuotingEnclave
from mcnode.attest.verify import verify_evidence
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign
from mcnode.enclave import ClientSession, CodeIdentity, Enclave, EnclaveConfig, peer_auth_message
from mcnode.ledger import LedgerDB

MRENCLAVE = bytes(range(32))
MRSIGNER = bytes(range(32, 64))


def timed(fn: Callable[[], object], rounds: int) -> dict[str, float]:
    fn()  # warm up
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p90_ms": round(samples[int(len(samples) * 0.9) - 1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    now = int(time.time())
    policy = Policy(mrenclaves=frozenset({MRENCLAVE}), allow_simulation=True)
    hosts = {name: ed25519_keypair(SeededRandom(i)) for i, name in enumerate("ab")}
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pki = SimPki.generate(now - 3600)
        pki.save(d / "pki")
        root = pki.root_ca_der
        ledger = LedgerDB(d / "ledger", create=True)
        sim = AttestationConfig("sim", "bench", d / "pki", root, policy)
        off = AttestationConfig.off("bench")

        def enclave(attestation: AttestationConfig, seed: int) -> Enclave:
            config = EnclaveConfig(
                ed25519_keypair(SeededRandom(100 + seed))[0],
                attestation=attestation,
                code_identity=CodeIdentity(MRENCLAVE, MRSIGNER, 1, 1),
            )
            return Enclave(config, ledger)

        qe = SimQuotingEnclave(pki)
        report_data = expected_report_data(bytes(32), bytes(32), bytes(32))
        results["quote"] = timed(lambda: qe.quote(MRENCLAVE, MRSIGNER, 1, 1, report_data), rounds)
        quote = qe.quote(MRENCLAVE, MRSIGNER, 1, 1, report_data)
        collateral = qe.collateral(now - 60)
        results["quote_bytes"] = len(quote)
        results["collateral_bytes"] = len(collateral)
        results["evidence_bytes"] = len(Evidence(quote, collateral).to_bytes())
        results["verify_evidence"] = timed(
            lambda: verify_evidence(quote, collateral, policy, now, root), rounds
        )

        for mode, config in (("with_evidence", sim), ("without_evidence", off)):
            server = enclave(config, 1)
            trust = policy if config.attests else None

            msg1 = ClientSession.connect(trust, root, now).first_message

            def enclave_side(server: Enclave = server, msg1: bytes = msg1) -> None:
                server.client_handshake(msg1)  # answering msg1 (the same one each time)

            def client_side(server: Enclave = server, trust: Policy | None = trust) -> None:
                session = ClientSession.connect(trust, root, now)
                _, msg2 = server.client_handshake(session.first_message)
                session.finish(msg2)

            results[f"client_handshake_{mode}"] = {
                "enclave_side": timed(enclave_side, rounds),
                "whole": timed(client_side, rounds),
            }
            a, b = enclave(config, 2), enclave(config, 3)

            def peer(a: Enclave = a, b: Enclave = b) -> None:
                hs1 = a.peer_initiate("b")
                sig1 = ed25519_sign(hosts["a"][0], peer_auth_message(hs1.transcript))
                hs2, _ = b.peer_accept("a", hs1.message, sig1, hosts["a"][1])
                sig2 = ed25519_sign(hosts["b"][0], peer_auth_message(hs2.transcript))
                a.peer_complete("b", hs2.message, sig2, hosts["b"][1])

            hs1 = a.peer_initiate("b")
            results[f"peer_message1_bytes_{mode}"] = len(hs1.message)
            results[f"peer_handshake_{mode}"] = timed(peer, rounds)
        ledger.close()

    width = max(len(k) for k in results)
    for name, value in results.items():
        if isinstance(value, dict) and "median_ms" not in value:
            for part, figures in value.items():
                print(f"{name + ' / ' + part:<{width + 15}} {_fmt(figures)}")
        else:
            print(f"{name:<{width + 15}} {_fmt(value)}")
    print(json.dumps(results))


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return f"median {value['median_ms']:8.3f} ms   p90 {value['p90_ms']:8.3f} ms"
    return f"{value} bytes"


if __name__ == "__main__":
    main()
