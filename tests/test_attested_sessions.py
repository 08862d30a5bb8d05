"""Attestation evidence in the enclave's handshakes: clients (Noise NX) and peer enclaves
(Noise IX, both ways) trust only an enclave whose evidence verifies under their policy and
binds this very handshake, its static key and its block signer; the peer prologue binds
the network's consensus configuration; the attestation configuration file; the real
enclave process with `--attestation`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcnode import binary
from mcnode.attest.config import (
    AttestationConfig,
    AttestationConfigError,
    read_attestation_file,
)
from mcnode.attest.evidence import MAX_COLLATERAL_BYTES, MAX_EVIDENCE_BYTES, Evidence
from mcnode.attest.policy import Policy
from mcnode.attest.sim_pki import DAY, SimPki
from mcnode.crypto import SeededRandom
from mcnode.enclave import (
    AttestationFailed,
    ClientSession,
    CodeIdentity,
    Enclave,
    EnclaveConfig,
    HandshakePayload,
    PeerAuthError,
    SessionError,
    SessionId,
)
from mcnode.enclave.attestation import COLLATERAL_BACKDATE
from mcnode.enclave.css import NO_MRSIGNER
from mcnode.enclave.measure import measure
from mcnode.enclave.noise import (
    CLIENT_PROLOGUE,
    CLIENT_PROTOCOL,
    MAX_NOISE_MESSAGE,
    PEER_PROTOCOL,
    Handshake,
    peer_prologue,
)
from mcnode.enclave.process import EnclaveProcess, EnclaveProcessError
from mcnode.enclave.sealing import provision
from mcnode.ledger.block import BLOCK_VERSION
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE, WellFormedTxContext
from test_enclave import HOSTS, SIGNING_PK, SIGNING_SK, World, make_world, peer_up, vouch

CREATED = 1_760_000_000
NOW = CREATED + 86_400
MR_A = hashlib.sha256(b"enclave build A").digest()
MR_C = hashlib.sha256(b"enclave build C").digest()
MRSIGNER = hashlib.sha256(b"signer").digest()
NETWORK = "testnet"


class Clock:
    """A clock the test moves."""

    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@dataclass
class Pkis:
    path: Path
    pki: SimPki
    other_path: Path
    other: SimPki


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> Pkis:
    d = tmp_path_factory.mktemp("pki")
    pki, other = (
        SimPki.generate(CREATED, SeededRandom(1)),
        SimPki.generate(CREATED, SeededRandom(2)),
    )
    pki.save(d / "net")
    other.save(d / "other")
    return Pkis(d / "net", pki, d / "other", other)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = make_world(tmp_path_factory.mktemp("attested") / "ledger", 5)
    yield w
    w.ledger.close()


def policy(*mrenclaves: bytes, allow_simulation: bool = True) -> Policy:
    return Policy(mrenclaves=frozenset(mrenclaves or (MR_A,)), allow_simulation=allow_simulation)


def sim_config(
    pkis: Pkis,
    trust: Policy | None = None,
    *,
    network: str = NETWORK,
    other_pki: bool = False,
    valid_seconds: int = 30 * DAY,
) -> AttestationConfig:
    return AttestationConfig(
        "sim",
        network,
        pkis.other_path if other_pki else pkis.path,
        (pkis.other if other_pki else pkis.pki).root_ca_der,
        trust or policy(),
        valid_seconds,
    )


def make_enclave(
    world: World,
    attestation: AttestationConfig | None,
    *,
    seed: int = 1,
    mrenclave: bytes = MR_A,
    clock: Clock | None = None,
    minimum_fee: int = DEFAULT_MINIMUM_FEE,
) -> Enclave:
    config = EnclaveConfig(
        SIGNING_SK,
        rng=SeededRandom(1000 + seed),
        minimum_fee=minimum_fee,
        attestation=attestation,
        code_identity=CodeIdentity(mrenclave, MRSIGNER, 7, 3),
        now=clock or Clock(),
    )
    return Enclave(config, world.ledger)


def client_handshake(
    enclave: Enclave, trust: Policy | None, root: bytes | None, now: int = NOW
) -> tuple[SessionId, ClientSession]:
    session = ClientSession.connect(trust, root, now)
    session_id, msg2 = enclave.client_handshake(session.first_message)
    session.finish(msg2)
    return session_id, session


def refused(
    enclave: Enclave, trust: Policy | None, root: bytes | None, now: int = NOW
) -> AttestationFailed:
    session = ClientSession.connect(trust, root, now)
    _, msg2 = enclave.client_handshake(session.first_message)
    with pytest.raises(AttestationFailed) as err:
        session.finish(msg2)
    with pytest.raises(SessionError):  # nothing can be sealed on it
        session.encrypt_tx(b"tx")
    return err.value


# -- clients -------------------------------------------------------------------------------


def test_a_client_accepts_an_attested_enclave_and_gets_its_verdict(
    world: World, pkis: Pkis
) -> None:
    enclave = make_enclave(world, sim_config(pkis))
    session_id, session = client_handshake(enclave, policy(), pkis.pki.root_ca_der)
    verdict = session.verdict
    assert verdict is not None
    assert (verdict.mrenclave, verdict.mrsigner, verdict.isv_prod_id, verdict.isv_svn) == (
        MR_A,
        MRSIGNER,
        7,
        3,
    )
    assert verdict.simulated and verdict.tcb_status == "UpToDate"
    assert session.block_signer == enclave.block_signing_public_key == SIGNING_PK
    assert session.server_identity == enclave.identity_public_key
    tx = world.pay(0)  # and the session carries a real payment
    ctx = enclave.client_tx_propose(session_id, session.encrypt_tx(tx.to_bytes()))
    assert ctx == WellFormedTxContext.from_tx(tx)
    enclave.forget([tx.tx_hash()])


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("another_mrenclave", "mrenclave"),
        ("another_networks_pki", "untrusted_root"),
        ("simulation_not_allowed", "simulation_not_allowed"),
        ("expired", "collateral_expired"),
        ("intel_root", "untrusted_root"),
    ],
)
def test_a_client_refuses_evidence_its_policy_does_not_accept(
    world: World, pkis: Pkis, case: str, reason: str
) -> None:
    enclave = make_enclave(world, sim_config(pkis))
    root = pkis.pki.root_ca_der
    trust, now = policy(), NOW
    if case == "another_mrenclave":
        trust = policy(MR_C)
    elif case == "another_networks_pki":
        root = pkis.other.root_ca_der
    elif case == "simulation_not_allowed":
        trust = policy(allow_simulation=False)
    elif case == "expired":
        now = NOW + 31 * DAY  # past the window of the collateral the enclave serves
    elif case == "intel_root":
        root = None  # simulated evidence never chains to Intel's root
    err = refused(enclave, trust, root, now)
    assert err.reason == reason
    assert err.code.name == "BAD_SESSION" and reason in str(err)


def test_a_client_refuses_an_enclave_that_sends_no_evidence(world: World, pkis: Pkis) -> None:
    off = make_enclave(world, None)
    assert refused(off, policy(), pkis.pki.root_ca_der).reason == "no_evidence"
    off_by_file = make_enclave(world, AttestationConfig.off(NETWORK))
    assert refused(off_by_file, policy(), None).reason == "no_evidence"
    # Without a policy, asked for explicitly, a mode "off" enclave is reached unattested.
    _, session = client_handshake(off, None, None)
    assert session.verdict is None and session.block_signer == SIGNING_PK


def _payload_of(enclave: Enclave) -> HandshakePayload:
    """The payload of the enclave's answer to a handshake of our own (a recording)."""
    hs = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=True)
    _, msg2 = enclave.client_handshake(hs.write())
    return HandshakePayload.from_bytes(hs.read(msg2))


def _answer_with(enclave: Enclave, session: ClientSession, payload: bytes) -> bytes:
    """A message 2 from the enclave's own identity key carrying `payload`: what a host
    holding the key (or a replay of recorded bytes) could send."""
    hs = Handshake(
        CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=enclave._identity_private
    )
    hs.read(session.first_message)
    return hs.write(payload)


def test_evidence_recorded_in_one_handshake_does_not_verify_in_another(
    world: World, pkis: Pkis
) -> None:
    enclave = make_enclave(world, sim_config(pkis))
    recorded = _payload_of(enclave)
    assert recorded.evidence is not None
    root = pkis.pki.root_ca_der
    # Even the enclave's own key cannot pass off another handshake's quote...
    session = ClientSession.connect(policy(), root, NOW)
    with pytest.raises(AttestationFailed) as err:
        session.finish(_answer_with(enclave, session, recorded.to_bytes()))
    assert err.value.reason == "report_data"
    # ...nor name another block signer than the one its quote binds.
    session = ClientSession.connect(policy(), root, NOW)
    hs = Handshake(
        CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=enclave._identity_private
    )
    hs.read(session.first_message)
    honest = enclave._payload  # the enclave's payload for this very handshake

    def other_signer(nonce: bytes) -> bytes:
        said = HandshakePayload.from_bytes(honest(nonce))
        return HandshakePayload(b"\x05" * 32, said.evidence).to_bytes()

    with pytest.raises(AttestationFailed) as err:
        session.finish(hs.write(other_signer))
    assert err.value.reason == "report_data"
    # The control: the enclave's own payload for the handshake is accepted.
    session = ClientSession.connect(policy(), root, NOW)
    hs = Handshake(
        CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=enclave._identity_private
    )
    hs.read(session.first_message)
    session.finish(hs.write(honest))
    assert session.verdict is not None


def test_a_client_payload_that_does_not_decode_is_refused(world: World, pkis: Pkis) -> None:
    enclave = make_enclave(world, sim_config(pkis))
    session = ClientSession.connect(policy(), pkis.pki.root_ca_der, NOW)
    with pytest.raises(SessionError, match="payload"):
        session.finish(_answer_with(enclave, session, b"\x09junk"))
    with pytest.raises(TypeError):
        ClientSession.connect(enclave.identity_public_key, None)  # type: ignore[arg-type]


def test_evidence_is_refreshed_before_it_expires(world: World, pkis: Pkis) -> None:
    clock = Clock()
    enclave = make_enclave(world, sim_config(pkis), clock=clock)
    first = enclave.evidence_expires()
    assert first == NOW - COLLATERAL_BACKDATE + 30 * DAY
    maker = enclave._evidence
    assert maker is not None and maker.collaterals_made == 1
    clock.t = first - 10 * DAY - 1  # over a third of the window left: the same collateral
    assert enclave.evidence_expires() == first and maker.collaterals_made == 1
    client_handshake(enclave, policy(), pkis.pki.root_ca_der, clock.t)
    clock.t = first - 10 * DAY  # a third left: remade, from now
    assert enclave.evidence_expires() == clock.t - COLLATERAL_BACKDATE + 30 * DAY > first
    assert maker.collaterals_made == 2
    # A client past the first collateral's end accepts the enclave's fresh evidence.
    clock.t = first + 1
    _, session = client_handshake(enclave, policy(), pkis.pki.root_ca_der, clock.t)
    assert session.verdict is not None
    # A clock a little behind the enclave's still finds the collateral valid.
    client_handshake(enclave, policy(), pkis.pki.root_ca_der, clock.t - COLLATERAL_BACKDATE // 2)


def test_evidence_fits_one_noise_message(world: World, pkis: Pkis) -> None:
    enclave = make_enclave(world, sim_config(pkis))
    payload = _payload_of(enclave)
    assert payload.evidence is not None
    size = len(payload.evidence.to_bytes())
    assert 10_000 < size <= MAX_EVIDENCE_BYTES
    assert MAX_EVIDENCE_BYTES + 1 + 32 + 32 + 48 + 16 < MAX_NOISE_MESSAGE
    hs1 = enclave.peer_initiate("x")
    assert size < len(hs1.message) < MAX_NOISE_MESSAGE
    too_big = Evidence(b"q", b"c" * (MAX_COLLATERAL_BYTES + 1))
    with pytest.raises(ValueError):
        too_big.to_bytes()
    raw = (
        b"\x01"
        + (1).to_bytes(4, "little")
        + b"q"
        + (MAX_COLLATERAL_BYTES + 1).to_bytes(4, "little")
    )
    with pytest.raises(binary.DecodeError):
        Evidence.from_bytes(raw + b"c" * (MAX_COLLATERAL_BYTES + 1))
    assert Evidence.from_bytes(payload.evidence.to_bytes()) == payload.evidence


# -- peers ---------------------------------------------------------------------------------


def _tx_flows(world: World, a: Enclave, b: Enclave, a_name: str = "a", b_name: str = "b") -> None:
    """A tx b holds reaches a on a's session with b (a fetches it)."""
    tx = world.pay(1)
    (held,) = b._accept_many([tx])  # b validated and holds it, as after a client's proposal
    assert not isinstance(held, Exception), held
    got = a.peer_tx_propose(b_name, b.answer_fetch(a_name, a.seal_fetch(b_name, [tx.tx_hash()])))
    assert [c.tx_hash for c in got] == [tx.tx_hash()]
    a.forget([tx.tx_hash()])
    b.forget([tx.tx_hash()])


def test_peers_pair_when_both_attest_under_each_others_policies(world: World, pkis: Pkis) -> None:
    a = make_enclave(world, sim_config(pkis, policy(MR_A, MR_C)), seed=1)
    b = make_enclave(world, sim_config(pkis, policy(MR_A, MR_C)), seed=2, mrenclave=MR_C)
    seen_by_a, seen_by_b = peer_up(a, b)
    assert (seen_by_a.mrenclave, seen_by_a.attested, seen_by_a.simulated) == (MR_C, True, True)
    assert (seen_by_b.mrenclave, seen_by_b.attested, seen_by_b.simulated) == (MR_A, True, True)
    assert seen_by_a.identity == b.identity_public_key
    assert seen_by_b.block_signer == a.block_signing_public_key
    assert a.peer_info("b") == seen_by_a
    _tx_flows(world, a, b)
    # Mode "off" on both sides: unattested sessions, as before.
    x, y = make_enclave(world, None, seed=3), make_enclave(world, None, seed=4)
    seen_by_x, _ = peer_up(x, y)
    assert (seen_by_x.mrenclave, seen_by_x.attested, seen_by_x.simulated) == (
        bytes(32),
        False,
        False,
    )


def test_a_peer_that_measures_differently_is_refused_both_ways(world: World, pkis: Pkis) -> None:
    a = make_enclave(world, sim_config(pkis), seed=1)
    b = make_enclave(world, sim_config(pkis), seed=2)
    peer_up(a, b)
    _tx_flows(world, a, b)
    # c runs other code (MR_C) and trusts both builds; a and b trust only MR_A. c's host
    # signs in b's name (say it stole b's host key): its evidence is what gives it away.
    c = make_enclave(world, sim_config(pkis, policy(MR_A, MR_C)), seed=3, mrenclave=MR_C)
    hs1 = c.peer_initiate("a")
    with pytest.raises(PeerAuthError) as err:  # c initiates: a refuses its message 1
        a.peer_accept("b", hs1.message, vouch("b", hs1), HOSTS["b"][1])
    assert err.value.reason == "attestation:mrenclave" and "MRENCLAVE" in str(err.value)
    hs1 = a.peer_initiate("b")  # a initiates (to "b", as its host believes): c answers
    hs2, seen_by_c = c.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    assert seen_by_c.attested and seen_by_c.mrenclave == MR_A
    with pytest.raises(PeerAuthError) as err:  # a refuses c's message 2
        a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    assert err.value.reason == "attestation:mrenclave"
    # Nothing changed: a's session with the real b carries on, both ways.
    assert a.peer_info("b").mrenclave == MR_A
    _tx_flows(world, a, b)
    _tx_flows(world, b, a, "b", "a")


def test_an_attesting_peer_refuses_one_that_sends_no_evidence(world: World, pkis: Pkis) -> None:
    a = make_enclave(world, sim_config(pkis), seed=1)
    off = make_enclave(world, AttestationConfig.off(NETWORK), seed=2)
    hs1 = off.peer_initiate("a")
    with pytest.raises(PeerAuthError) as err:
        a.peer_accept("b", hs1.message, vouch("b", hs1), HOSTS["b"][1])
    assert err.value.reason == "attestation:no_evidence"
    hs1 = a.peer_initiate("b")
    hs2, seen = off.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    assert not seen.attested  # an "off" enclave checks nothing
    with pytest.raises(PeerAuthError) as err:
        a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    assert err.value.reason == "attestation:no_evidence"


def test_a_peer_under_another_networks_pki_is_refused(world: World, pkis: Pkis) -> None:
    a = make_enclave(world, sim_config(pkis), seed=1)
    stranger = make_enclave(world, sim_config(pkis, other_pki=True), seed=2)
    hs1 = stranger.peer_initiate("a")
    with pytest.raises(PeerAuthError) as err:
        a.peer_accept("b", hs1.message, vouch("b", hs1), HOSTS["b"][1])
    assert err.value.reason == "attestation:untrusted_root"


def test_a_peer_whose_evidence_expired_is_refused(world: World, pkis: Pkis) -> None:
    late = Clock(NOW + 31 * DAY)
    a = make_enclave(world, sim_config(pkis), seed=1, clock=late)
    b = make_enclave(world, sim_config(pkis), seed=2)  # serves collateral made at NOW
    hs1 = b.peer_initiate("a")
    with pytest.raises(PeerAuthError) as err:
        a.peer_accept("b", hs1.message, vouch("b", hs1), HOSTS["b"][1])
    assert err.value.reason == "attestation:collateral_expired"


@pytest.mark.parametrize(
    "differs", [{"network": "othernet"}, {"minimum_fee": DEFAULT_MINIMUM_FEE + 1}]
)
def test_enclaves_configured_for_another_network_cannot_pair(
    world: World, pkis: Pkis, differs: dict[str, object]
) -> None:
    a = make_enclave(world, sim_config(pkis), seed=1)
    network = str(differs.get("network", NETWORK))
    fee = int(differs.get("minimum_fee", DEFAULT_MINIMUM_FEE))  # type: ignore[call-overload]
    b = make_enclave(world, sim_config(pkis, network=network), seed=2, minimum_fee=fee)
    with pytest.raises(PeerAuthError):
        peer_up(a, b)
    with pytest.raises(PeerAuthError):
        peer_up(b, a)
    # Mode "off" enclaves too: the prologue is bound whatever the attestation mode.
    x = make_enclave(world, AttestationConfig.off(NETWORK), seed=3)
    y = make_enclave(world, AttestationConfig.off(network), seed=4, minimum_fee=fee)
    with pytest.raises(PeerAuthError):
        peer_up(x, y)


def test_the_peer_prologue_binds_name_fee_and_version_and_mismatches_do_not_decrypt() -> None:
    base = peer_prologue(NETWORK, 400, BLOCK_VERSION)
    others = [
        peer_prologue("othernet", 400, BLOCK_VERSION),
        peer_prologue(NETWORK, 401, BLOCK_VERSION),
        peer_prologue(NETWORK, 400, BLOCK_VERSION + 1),
        peer_prologue(NETWORK + "4", 0, BLOCK_VERSION),
    ]
    assert len({base, *others}) == 5
    assert base.startswith(b"mcnode peer session v1") and len(base) == 22 + 32
    digest = hashlib.sha256(
        b"mcnode network config v1"
        + NETWORK.encode()
        + (400).to_bytes(8, "little")
        + BLOCK_VERSION.to_bytes(4, "little")
    ).digest()
    assert base[22:] == digest
    for other in others:
        keys = SeededRandom(9)
        i = Handshake(PEER_PROTOCOL, base, initiator=True, static_private=keys(32))
        r = Handshake(PEER_PROTOCOL, other, initiator=False, static_private=keys(32))
        r.read(i.write(b"hello"))  # message 1 is not encrypted yet...
        with pytest.raises(SessionError):
            i.read(r.write(b"reply"))  # ...message 2 is, under keys bound to the prologue


# -- the configuration file ----------------------------------------------------------------


def _doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "format": "mcnode-attestation",
        "version": 1,
        "mode": "sim",
        "network": NETWORK,
        "sim_pki": "net",
        "root_ca": "net/root-ca.pem",
        "valid_days": 7,
        "policy": {
            "mrenclaves": [MR_A.hex()],
            "mrsigner": None,
            "isv_prod_id": None,
            "min_isv_svn": None,
            "allowed_statuses": ["SWHardeningNeeded"],
            "allowed_advisories": ["INTEL-SA-00615"],
            "allow_simulation": True,
        },
    }
    doc.update(changes)
    return doc


def test_the_attestation_file_reads_with_paths_from_its_directory(pkis: Pkis) -> None:
    path = pkis.path.parent / "attestation.json"
    path.write_text(json.dumps(_doc()))
    config = read_attestation_file(path)
    assert (config.mode, config.network, config.valid_seconds) == ("sim", NETWORK, 7 * DAY)
    assert config.sim_pki_dir == pkis.path and config.root_ca_der == pkis.pki.root_ca_der
    assert config.policy == Policy(
        mrenclaves=frozenset({MR_A}),
        allowed_statuses=frozenset({"SWHardeningNeeded"}),
        allowed_advisories=frozenset({"INTEL-SA-00615"}),
        allow_simulation=True,
    )
    assert config.load_quoting_enclave() is not None
    signer = _doc(policy={"mrsigner": MRSIGNER.hex(), "isv_prod_id": 7, "min_isv_svn": 2})
    config = AttestationConfig.from_json(signer, pkis.path.parent)
    assert (config.policy.mrsigner, config.policy.min_isv_svn) == (MRSIGNER, 2)
    assert not config.policy.allow_simulation
    intel = AttestationConfig.from_json(_doc(root_ca=None), pkis.path.parent)
    assert intel.root_ca_der is None
    off = AttestationConfig.from_json(
        {"format": "mcnode-attestation", "version": 1, "mode": "off", "network": "n"}, Path("/")
    )
    assert not off.attests and off.load_quoting_enclave() is None and off.network == "n"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"format": "other"}, "format"),
        ({"version": 2}, "version"),
        ({"mode": "hardware"}, "mode"),
        ({"network": 5}, "network"),
        ({"network": "x" * 65}, "network"),
        ({"sim_pki": None}, "sim_pki"),
        ({"root_ca": "missing.pem"}, "root_ca"),
        ({"root_ca": "net/pki.json"}, "root_ca"),
        ({"valid_days": 0}, "valid_days"),
        ({"valid_days": True}, "valid_days"),
        ({"policy": []}, "policy"),
        ({"policy": {"mrenclaves": ["00"], "allow_simulation": True}}, "policy.mrenclaves"),
        ({"policy": {"allow_simulation": True}}, "policy"),
        ({"policy": {"mrenclaves": [MR_A.hex()], "allow_simulation": "yes"}}, "allow_simulation"),
        ({"policy": {"mrenclaves": [MR_A.hex()], "allowed_statuses": ["Revoked"]}}, "policy"),
        ({"policy": {"mrenclaves": [MR_A.hex()], "typo": 1}}, "policy.typo"),
        ({"extra": 1}, "extra"),
    ],
)
def test_attestation_file_errors_are_one_line_naming_the_field(
    pkis: Pkis, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(AttestationConfigError) as err:
        AttestationConfig.from_json(_doc(**changes), pkis.path.parent)
    message = str(err.value)
    assert field in message and "\n" not in message


def test_a_missing_pki_or_mode_dcap_do_not_load(pkis: Pkis, tmp_path: Path) -> None:
    missing = AttestationConfig.from_json(_doc(sim_pki="nowhere"), pkis.path.parent)
    with pytest.raises(AttestationConfigError, match="sim_pki"):
        missing.load_quoting_enclave()
    dcap = AttestationConfig.from_json(_doc(mode="dcap"), pkis.path.parent)
    with pytest.raises(AttestationConfigError, match="not available on this machine"):
        dcap.load_quoting_enclave()
    bad = tmp_path / "a.json"
    bad.write_text("{not json")
    with pytest.raises(AttestationConfigError, match="not JSON"):
        read_attestation_file(bad)
    with pytest.raises(ValueError, match="code_identity"):
        EnclaveConfig(SIGNING_SK, attestation=sim_config(pkis))


# -- the enclave process -------------------------------------------------------------------


def _write_attestation(d: Path, pkis: Pkis, **changes: object) -> Path:
    doc = _doc(
        sim_pki=str(pkis.path),
        root_ca=str(pkis.path / "root-ca.pem"),
        valid_days=30,
        policy={"mrenclaves": [measure().hex(), MR_A.hex()], "allow_simulation": True},
    )
    doc.update(changes)
    path = d / "attestation.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_enclave_process_attests_with_attestation(tmp_path: Path, pkis: Pkis) -> None:
    keys = tmp_path / "keys"
    _, signer = provision(keys)
    w = make_world(tmp_path / "ledger", 8, signers={SIGNING_PK, signer})
    path = _write_attestation(tmp_path, pkis)
    log = tmp_path / "enclave.log"
    try:
        with (
            log.open("a") as stderr,
            EnclaveProcess.start(w.ledger.path, keys, stderr=stderr, attestation=path) as child,
        ):
            me = child.identity()
            now = int(time.time())
            assert me.attestation_mode == "sim"
            assert now + 29 * DAY < me.evidence_expires <= now + 30 * DAY
            # A client trusting this build, under the network's root, at the real time.
            session = ClientSession.connect(policy(me.measurement), pkis.pki.root_ca_der)
            session_id, msg2 = child.client_handshake(session.first_message)
            session.finish(msg2)
            assert session.verdict is not None and session.verdict.mrenclave == measure()
            assert session.verdict.mrsigner == NO_MRSIGNER  # no .css: an unsigned build
            tx = w.pay(0)
            ctx = child.client_tx_propose(session_id, session.encrypt_tx(tx.to_bytes()))
            assert ctx == WellFormedTxContext.from_tx(tx)
            # A peer, in process, on the same network: attested both ways.
            peer = make_enclave(
                w,
                sim_config(pkis, policy(me.measurement)),
                seed=5,
                clock=Clock(now),
                mrenclave=MR_A,
            )
            seen_by_child, seen_by_peer = peer_up(child, peer)  # type: ignore[arg-type]
            assert seen_by_child.attested and seen_by_child.mrenclave == MR_A
            assert seen_by_peer.attested and seen_by_peer.mrenclave == measure()
            # One that measures differently: refused, and the reason crosses the process.
            stranger = make_enclave(
                w,
                sim_config(pkis, policy(MR_C, me.measurement)),
                seed=6,
                mrenclave=MR_C,
                clock=Clock(now),
            )
            hs1 = stranger.peer_initiate("a")
            with pytest.raises(PeerAuthError) as err:
                child.peer_accept("b", hs1.message, vouch("b", hs1), HOSTS["b"][1])
            assert err.value.reason == "attestation:mrenclave"
            assert child.peer_info("b").mrenclave == MR_A  # the real session survives
    finally:
        w.ledger.close()
    started = next(line for line in log.read_text().splitlines() if "enclave started" in line)
    assert "attestation=sim" in started and f"network={NETWORK}" in started


@pytest.mark.parametrize(
    ("changes", "says"),
    [({"sim_pki": "/nonexistent"}, "sim_pki"), ({"mode": "dcap"}, "not available")],
)
def test_the_enclave_process_cannot_start_without_its_pki(
    tmp_path: Path, pkis: Pkis, changes: dict[str, object], says: str
) -> None:
    keys = tmp_path / "keys"
    provision(keys)
    w = make_world(tmp_path / "ledger", 8)
    path = _write_attestation(tmp_path, pkis, **changes)
    log = tmp_path / "enclave.log"
    try:
        with (
            log.open("a") as stderr,
            pytest.raises(EnclaveProcessError, match="exited with code 3"),
        ):
            EnclaveProcess.start(w.ledger.path, keys, stderr=stderr, attestation=path)
    finally:
        w.ledger.close()
    [line] = log.read_text().splitlines()
    assert "cannot start" in line and says in line
