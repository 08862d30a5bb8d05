"""The host-enclave frames (`enclave.ipc`): every method's arguments and results round
trip, errors come back as their own classes, and torn, oversized or garbage frames are
`IpcError`s, never anything else."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode.crypto import SeededRandom
from mcnode.enclave import (
    EnclaveApi,
    EnclaveError,
    EnclaveIdentity,
    EnclaveInternalError,
    FormedBlock,
    HardeningStep,
    IpcError,
    MessageDecodeError,
    MessageTooLarge,
    PeerAuthError,
    PeerEnclave,
    PeerHandshake,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    SealError,
    ServerIdentityMismatch,
    SessionError,
    SessionId,
    StaleParent,
    TxRejected,
    UnknownTx,
    ipc,
)
from mcnode.enclave.errors import VALIDATION_CODES, CapacityError
from mcnode.enclave.ipc import (
    ERROR_CLASSES,
    MAX_BLOB,
    MAX_FRAME,
    SPECS,
    ErrorKind,
    Method,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    error_kind,
    frame_length,
    response_id,
)
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction.validation import WellFormedTxContext

R = ProposeTxResult
HASH = st.binary(min_size=32, max_size=32)
HASHES = st.lists(HASH, max_size=20)
BLOB = st.binary(max_size=3000)
SMALL = st.binary(max_size=1024)
LABEL = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 256)
SESSION = st.binary(max_size=64).map(SessionId)
U64 = st.integers(0, 2**64 - 1)
CONTEXT = st.builds(
    WellFormedTxContext,
    HASH,
    U64,
    U64,
    st.lists(HASH, max_size=16).map(tuple),
    st.lists(HASH, max_size=16).map(tuple),
    st.lists(U64, max_size=16).map(tuple),
)
_CHAIN = ChainBuilder(bytes(range(32))).chain(3, outputs=2, key_images=2)
BLOCK = st.sampled_from([d.block for d in _CHAIN])
FORMED = st.builds(
    FormedBlock,
    st.sampled_from([None, *_CHAIN]),
    HASHES.map(tuple),
    st.lists(st.tuples(HASH, st.sampled_from(list(ProposeTxResult))), max_size=5).map(tuple),
)
PEER_HANDSHAKE = st.builds(PeerHandshake, BLOB, HASH)
PEER_ENCLAVE = st.builds(PeerEnclave, HASH, HASH, HASH, st.booleans(), st.booleans())
U16 = st.integers(0, 2**16 - 1)
IDENTITY = st.builds(
    EnclaveIdentity,
    HASH,
    HASH,
    HASH,
    HASH,
    U16,
    U16,
    st.integers(0, 2**32 - 1),
    st.lists(
        st.builds(HardeningStep, st.sampled_from(["no_network", "ñ"]), st.booleans(), LABEL),
        max_size=16,
    ).map(tuple),
    st.sampled_from(["off", "sim"]),
    st.integers(0, 2**64 - 1),
)

#: (arguments, result) of each method.
CASES: dict[Method, tuple[st.SearchStrategy[tuple[Any, ...]], st.SearchStrategy[Any]]] = {
    Method.IDENTITY: (st.just(()), IDENTITY),
    Method.CLIENT_HANDSHAKE: (st.tuples(BLOB), st.tuples(SESSION, BLOB)),
    Method.CLIENT_TX_PROPOSE: (st.tuples(SESSION, BLOB), CONTEXT),
    Method.CLIENT_CLOSE: (st.tuples(SESSION), st.none()),
    Method.PEER_INITIATE: (st.tuples(LABEL), PEER_HANDSHAKE),
    Method.PEER_ACCEPT: (
        st.tuples(LABEL, BLOB, SMALL, SMALL),
        st.tuples(PEER_HANDSHAKE, PEER_ENCLAVE),
    ),
    Method.PEER_COMPLETE: (st.tuples(LABEL, BLOB, SMALL, SMALL), PEER_ENCLAVE),
    Method.PEER_INFO: (st.tuples(LABEL), PEER_ENCLAVE),
    Method.TXS_FOR_PEER: (st.tuples(LABEL, HASHES), BLOB),
    Method.SEAL_FETCH: (st.tuples(LABEL, HASHES), BLOB),
    Method.ANSWER_FETCH: (st.tuples(LABEL, BLOB), BLOB),
    Method.PEER_TX_PROPOSE: (st.tuples(LABEL, BLOB), st.lists(CONTEXT, max_size=5)),
    Method.BLOCK_APPENDED: (st.tuples(U64, HASHES), HASHES),
    Method.FORM_BLOCK: (st.tuples(HASHES, BLOCK, U64), FORMED),
    Method.FORGET: (st.tuples(HASHES), st.none()),
    Method.CACHED_TX_HASHES: (st.just(()), HASHES.map(frozenset)),
}


def body(frame: bytes) -> bytes:
    assert frame_length(frame[:4]) == len(frame) - 4
    return frame[4:]


def test_one_method_per_api_call() -> None:
    calls = {
        name
        for name, member in inspect.getmembers(EnclaveApi)
        if getattr(member, "__isabstractmethod__", False) and not isinstance(member, property)
    }
    assert {spec.call for spec in SPECS.values()} == calls | {None}
    assert set(SPECS) == set(Method) == set(CASES)
    for method, spec in SPECS.items():
        if spec.call is not None:  # arguments in the order the API method takes them
            params = list(inspect.signature(getattr(EnclaveApi, spec.call)).parameters)[1:]
            assert len(params) == len(spec.args), method


@pytest.mark.parametrize("method", list(Method), ids=lambda m: m.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_method_round_trips(method: Method, data: st.DataObject) -> None:
    args_strategy, result_strategy = CASES[method]
    args, result = data.draw(args_strategy), data.draw(result_strategy)
    request_id = data.draw(st.integers(0, 2**32 - 1))
    assert decode_request(body(encode_request(request_id, method, *args))) == (
        request_id,
        method,
        tuple(args),
    )
    frame = encode_response(request_id, method, result)
    assert response_id(body(frame)) == request_id
    assert decode_response(body(frame), method) == (request_id, result)


def _errors() -> list[EnclaveError]:
    hashes = tuple(bytes([i]) * 32 for i in range(6))
    errors: list[EnclaveError] = [TxRejected.for_code(code) for code in VALIDATION_CODES.values()]
    errors += [
        EnclaveError("plain"),
        ProposeTxError("refused", R.NOT_SERVING),
        SessionError("no such session"),
        MessageDecodeError("not a tx"),
        CapacityError("full"),
        UnknownTx(hashes),
        UnknownTx(()),
        PeerSessionError("no session with 'out:n1'"),
        PeerAuthError("not signed by the key configured for 'in:n2'", "signature"),
        PeerAuthError("attestation of peer 'in:n2' refused: " + "x" * 400, "attestation:mrenclave"),
        StaleParent("not the last block"),
        MessageTooLarge("too big"),
        SealError("does not unseal"),
        EnclaveInternalError("the enclave's FORM_BLOCK failed: KeyError"),
        IpcError("request 7: unknown method 99", 7),
        SessionError("ünïcödé " * 400),  # over the message limit: cut, still one line
    ]
    return errors


@pytest.mark.parametrize("error", _errors(), ids=lambda e: type(e).__name__)
def test_errors_come_back_as_their_own_class(error: EnclaveError) -> None:
    frame = encode_response(41, Method.FORM_BLOCK, error)
    with pytest.raises(EnclaveError) as got:
        decode_response(body(frame), Method.FORM_BLOCK)
    rebuilt = got.value
    assert type(rebuilt) is type(error)
    assert str(error).startswith(str(rebuilt)) and len(str(rebuilt).encode()) <= 1024
    assert getattr(rebuilt, "code", None) == getattr(error, "code", None)
    if isinstance(error, UnknownTx):
        assert isinstance(rebuilt, UnknownTx) and rebuilt.tx_hashes == error.tx_hashes
    if isinstance(error, PeerAuthError):  # the reason crosses too
        assert isinstance(rebuilt, PeerAuthError) and rebuilt.reason == error.reason
    if isinstance(error, TxRejected):  # the host's except clauses keep working
        assert isinstance(rebuilt, ProposeTxError) and rebuilt.code is error.code


def test_every_error_kind_has_a_class_and_subclasses_take_their_bases() -> None:
    assert set(ERROR_CLASSES) == set(ErrorKind)
    mismatch = ServerIdentityMismatch("a client's error, never the enclave's")
    assert error_kind(mismatch) is ErrorKind.SESSION
    with pytest.raises(SessionError):
        decode_response(body(encode_response(1, None, mismatch)), Method.IDENTITY)


def test_frames_over_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert frame_length((MAX_FRAME).to_bytes(4, "little")) == MAX_FRAME
    for header in ((MAX_FRAME + 1).to_bytes(4, "little"), b"\xff" * 4, b"\0\0\0"):
        with pytest.raises(IpcError):
            frame_length(header)
    with pytest.raises(IpcError):
        decode_request(bytes(MAX_FRAME + 1))
    with pytest.raises(ValueError):  # a blob over its limit is the caller's bug
        encode_request(1, Method.ANSWER_FETCH, "in:n1", bytes(MAX_BLOB + 1))
    with pytest.raises(ValueError):  # tx hashes are 32 bytes
        encode_request(1, Method.FORGET, [b"short"])
    with pytest.raises(TypeError):
        encode_request(1, Method.PEER_INFO)
    # Fields within their limits, a frame over its own: the sender's typed error.
    monkeypatch.setattr(ipc, "MAX_FRAME", 1000)
    with pytest.raises(MessageTooLarge):
        encode_request(1, Method.ANSWER_FETCH, "in:n1", bytes(1000))
    with pytest.raises(MessageTooLarge):
        encode_response(1, Method.ANSWER_FETCH, bytes(1000))
    assert body(encode_response(1, Method.ANSWER_FETCH, bytes(900)))


def test_torn_and_trailing_requests_are_refused_with_their_id() -> None:
    frame = encode_request(
        0x01020304, Method.PEER_ACCEPT, "in:n1", b"message", b"s" * 64, b"k" * 32
    )
    good = body(frame)
    for cut in range(len(good)):
        with pytest.raises(IpcError) as err:
            decode_request(good[:cut])
        assert err.value.request_id == (0x01020304 if cut >= 4 else None)
    with pytest.raises(IpcError, match="trailing"):
        decode_request(good + b"\0")
    unknown = (7).to_bytes(4, "little") + bytes([200])
    with pytest.raises(IpcError, match="unknown method 200") as err:
        decode_request(unknown)
    assert err.value.request_id == 7
    bad_utf8 = (8).to_bytes(4, "little") + bytes([Method.PEER_INFO]) + b"\x02\x00\xff\xfe"
    with pytest.raises(IpcError, match="UTF-8"):
        decode_request(bad_utf8)


def test_garbage_responses_are_refused() -> None:
    ok = body(encode_response(3, Method.PEER_INFO, PeerEnclave(bytes(32), bytes(32))))
    error = body(encode_response(3, Method.PEER_INFO, PeerAuthError("no")))
    stale = body(encode_response(3, Method.PEER_INFO, StaleParent("no")))
    fee = (R.FEE_TOO_LOW.value).to_bytes(2, "little")
    cases = [
        ok[:-1],
        ok + b"\0",
        ok[:4] + b"\x02" + ok[5:],  # status 2
        error[:5] + b"\x63" + error[6:],  # error kind 99
        stale[:6] + fee + stale[8:],  # a result code on an error that has none
        error[:6] + b"\xff\xff" + error[8:],  # no result code on one that must have one
        b"",
        b"\1\2",
    ]
    for bad in cases:
        with pytest.raises(IpcError):
            decode_response(bad, Method.PEER_INFO)
    dropped = FormedBlock(None, (), ((b"h" * 32, R.OK),))
    formed = body(encode_response(3, Method.FORM_BLOCK, dropped))
    with pytest.raises(IpcError, match="result code"):
        decode_response(formed[:-2] + b"\xfe\x00", Method.FORM_BLOCK)
    with pytest.raises(IpcError, match="flag"):
        decode_response(formed[:5] + b"\x02" + formed[6:], Method.FORM_BLOCK)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_decodes_to_anything_but_ipc_errors(data: bytes) -> None:
    with contextlib.suppress(IpcError):
        decode_request(data)
    for method in (Method.IDENTITY, Method.FORM_BLOCK, Method.PEER_TX_PROPOSE):
        try:
            decode_response(data, method)
        except IpcError:
            pass
        except EnclaveError:  # a well-formed error response: fine, it is typed
            pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10), st.binary(min_size=1, max_size=8))
def test_a_flipped_byte_is_refused_or_decodes_to_a_value(position: int, junk: bytes) -> None:
    frame = encode_request(5, Method.FORM_BLOCK, [bytes(32)], _CHAIN[1].block, 9)
    good = bytearray(body(frame))
    pos = 5 + position  # inside the arguments
    good[pos : pos + len(junk)] = junk
    try:
        request_id, method, _ = decode_request(bytes(good))
    except IpcError as e:
        assert e.request_id == 5
    else:
        assert (request_id, method) == (5, Method.FORM_BLOCK)


def test_context_codec_matches_a_real_tx_context() -> None:
    rng = SeededRandom(3)
    ctx = WellFormedTxContext(rng(32), 400_000_000, 77, (rng(32),), (rng(32), rng(32)), (41,))
    frame = encode_response(9, Method.CLIENT_TX_PROPOSE, ctx)
    assert decode_response(body(frame), Method.CLIENT_TX_PROPOSE) == (9, ctx)
    assert len(body(frame)) == 4 + 1 + 32 + 8 + 8 + 1 + 32 + 1 + 64 + 1 + 8
