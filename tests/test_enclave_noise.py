"""Noise sessions: NX and IX handshakes, framed transport messages of any size, all or
nothing opening, and keys kept out of reprs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mcnode.binary import DecodeError
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import x25519_keypair
from mcnode.enclave import EnclaveConfig, MessageDecodeError, SessionError
from mcnode.enclave.enclave import MAX_PEER_BATCH_TXS, decode_batch, encode_batch
from mcnode.enclave.noise import (
    CLIENT_PROLOGUE,
    CLIENT_PROTOCOL,
    MAX_NOISE_MESSAGE,
    PEER_PROLOGUE,
    PEER_PROTOCOL,
    Handshake,
    Transport,
    sealed_size,
)
from mcnode.transaction.tx import MAX_TX_BYTES

SERVER_SK, SERVER_PK = x25519_keypair(SeededRandom(1))
PEER_SK, PEER_PK = x25519_keypair(SeededRandom(2))


def nx_pair() -> tuple[Transport, Transport]:
    client = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=True)
    server = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=SERVER_SK)
    server.read(client.write())
    client.read(server.write())
    return client.transport(), server.transport()


def test_nx_authenticates_the_server_only() -> None:
    client, server = nx_pair()
    assert client.remote_static == SERVER_PK
    assert server.remote_static is None
    assert client.handshake_hash == server.handshake_hash


def test_ix_authenticates_both() -> None:
    a = Handshake(PEER_PROTOCOL, PEER_PROLOGUE, initiator=True, static_private=SERVER_SK)
    b = Handshake(PEER_PROTOCOL, PEER_PROLOGUE, initiator=False, static_private=PEER_SK)
    b.read(a.write())
    assert b.remote_static == SERVER_PK
    a.read(b.write())
    ta, tb = a.transport(), b.transport()
    assert (ta.remote_static, tb.remote_static) == (PEER_PK, SERVER_PK)
    assert tb.open(ta.seal(b"to b"), 100) == b"to b"
    assert ta.open(tb.seal(b"to a"), 100) == b"to a"


def test_prologues_keep_handshake_kinds_apart() -> None:
    a = Handshake(PEER_PROTOCOL, b"another prologue", initiator=True, static_private=SERVER_SK)
    b = Handshake(PEER_PROTOCOL, PEER_PROLOGUE, initiator=False, static_private=PEER_SK)
    b.read(a.write())  # IX's first message is not yet authenticated...
    with pytest.raises(SessionError):
        a.read(b.write())  # ...its answer is, under both prologues


@pytest.mark.parametrize("protocol", [CLIENT_PROTOCOL, PEER_PROTOCOL])
def test_a_payload_made_from_the_handshake_hash_is_what_the_reader_sees(protocol: bytes) -> None:
    initiator_key = SERVER_SK if protocol == PEER_PROTOCOL else None
    a = Handshake(protocol, PEER_PROLOGUE, initiator=True, static_private=initiator_key)
    b = Handshake(protocol, PEER_PROLOGUE, initiator=False, static_private=PEER_SK)
    nonces: list[bytes] = []

    def payload(tag: bytes) -> Callable[[bytes], bytes]:
        def make(h: bytes) -> bytes:
            nonces.append(h)
            return tag + h

        return make

    before = a.transcript
    got = b.read(a.write(payload(b"one:")))
    assert got == b"one:" + nonces[0] and b.payload_hash == nonces[0] != before
    after_one = a.transcript
    got = a.read(b.write(payload(b"two:")))
    assert got == b"two:" + nonces[1] and a.payload_hash == nonces[1]
    # The hash of message 2's payload moment is past message 1 (it mixes in message 2's
    # keys: the reader's fresh ephemeral) and before the payload itself.
    assert nonces[1] not in (after_one, a.transport().handshake_hash)
    assert len(set(nonces)) == 2
    # Plain bytes still work, and the library's state carries no leftover hook.
    c = Handshake(protocol, PEER_PROLOGUE, initiator=True, static_private=initiator_key)
    d = Handshake(protocol, PEER_PROLOGUE, initiator=False, static_private=PEER_SK)
    assert d.read(c.write(b"plain")) == b"plain"
    assert c.read(d.write(b"answer")) == b"answer"
    assert c.transport().handshake_hash == d.transport().handshake_hash


def test_an_unfinished_handshake_has_no_transport() -> None:
    hs = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=True)
    with pytest.raises(SessionError):
        hs.transport()
    hs.write()
    with pytest.raises(SessionError):  # the responder speaks next
        hs.write()


@pytest.mark.parametrize("size", [0, 1, 65515, 65516, 65519, 65520, 3 * 65519, 300_000])
def test_messages_of_any_size_travel_in_frames(size: int) -> None:
    client, server = nx_pair()
    plaintext = bytes(i % 251 for i in range(size))
    sealed = client.seal(plaintext)
    assert len(sealed) == sealed_size(size)
    pos = 0
    while pos < len(sealed):  # every frame is one Noise message within the limit
        n = int.from_bytes(sealed[pos : pos + 2], "little")
        assert n <= MAX_NOISE_MESSAGE
        pos += 2 + n
    assert server.open(sealed, size) == plaintext
    assert client.open(server.seal(plaintext), size) == plaintext


def test_opening_is_all_or_nothing() -> None:
    client, server = nx_pair()
    message = bytes(200_000)
    sealed = client.seal(message)
    frames = []
    pos = 0
    while pos < len(sealed):
        n = int.from_bytes(sealed[pos : pos + 2], "little")
        frames.append(sealed[pos : pos + 2 + n])
        pos += 2 + n
    assert len(frames) == 4
    for bad in (
        b"".join(frames[:3]),  # last frame dropped: authentic, but short
        b"".join([frames[1], frames[0], *frames[2:]]),  # reordered
        b"".join(frames[1:]),  # first dropped
        sealed[:-1],  # torn
        sealed + b"\x01",  # a torn extra frame
    ):
        with pytest.raises(SessionError):
            server.open(bad, 2 * len(message))
    assert server.open(sealed, len(message)) == message  # still in step
    with pytest.raises(SessionError):
        server.open(sealed, len(message))  # and a replay is refused


def test_size_limits_refuse_before_decrypting() -> None:
    client, server = nx_pair()
    sealed = client.seal(bytes(1000))
    with pytest.raises(MessageDecodeError):
        server.open(sealed, 999)
    assert server.open(sealed, 1000) == bytes(1000)


def test_batches_round_trip_and_refuse_bad_shapes() -> None:
    txs = [b"", b"a", bytes(70_000)]
    assert decode_batch(encode_batch(txs)) == txs
    assert decode_batch(encode_batch([])) == []
    good = encode_batch(txs)
    for bad in (b"", good[:-1], good + b"\0", b"\x05\0\0\0", (1).to_bytes(4, "little") * 2):
        with pytest.raises(DecodeError):
            decode_batch(bad)
    # Hard limits: a count or a length over its limit is refused before anything is read.
    with pytest.raises(DecodeError, match="limit"):
        decode_batch((MAX_PEER_BATCH_TXS + 1).to_bytes(4, "little"))
    with pytest.raises(DecodeError, match="limit"):
        decode_batch((1).to_bytes(4, "little") + (MAX_TX_BYTES + 1).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="limit"):
        encode_batch([bytes(MAX_TX_BYTES + 1)])


def test_keys_stay_out_of_reprs() -> None:
    client, _ = nx_pair()
    signing, identity = bytes(range(32)), bytes(range(32, 64))
    cfg = EnclaveConfig(signing, identity_private_key=identity)
    for text in (repr(cfg), str(cfg), repr(client)):
        assert signing.hex() not in text and identity.hex() not in text
        assert str(list(signing)) not in text and repr(signing) not in text


@pytest.mark.parametrize(
    "bad",
    [
        {"block_signing_key": b"short"},
        {"identity_private_key": b"short"},
        {"minimum_fee": -1},
        {"max_client_sessions": 0},
        {"max_peer_sessions": 0},
        {"max_cached_txs": 0},
    ],
)
def test_config_refuses_nonsense(bad: dict[str, object]) -> None:
    args: dict[str, object] = {"block_signing_key": bytes(32), **bad}
    with pytest.raises(ValueError):
        EnclaveConfig(**args)  # type: ignore[arg-type]
