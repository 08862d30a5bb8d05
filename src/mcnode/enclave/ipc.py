"""The host-enclave protocol: frames of requests and responses over a byte stream.

A pure codec: no sockets, no threads, no clock. The enclave process (`server`) and the
host's proxies (`process`, and the service's asyncio client) read and write exactly these
frames. No pickle, nothing evaluated: every field is `mcnode.binary`'s little-endian
integers and length-prefixed bytes, every count and length bounded, input consumed
exactly. Anything else is an `IpcError`.

Frames::

    frame    := u32 length || body                 length <= MAX_FRAME (64 MiB)
    request  := u32 request_id || u8 method || args
    response := u32 request_id || u8 status || (result if status = 0 | error if status = 1)
    error    := u8 kind || u16 code (0xFFFF: none) || u16 len || message (UTF-8, <= 1024)
                || u32 n || n * 32-byte tx hashes (`UnknownTx`'s; otherwise n = 0)

`Method` numbers one entry per `EnclaveApi` call, plus `IDENTITY` (the enclave process
describes itself: `EnclaveIdentity`; the API's two key properties are read from it).
Arguments go in the order of the `EnclaveApi` method's parameters and results are what it
returns; see `_SPECS` for each field's encoding. The building blocks:

    blob      u32 len || bytes (len <= MAX_BLOB)        ciphertext, handshake messages
    small     u16 len || bytes (len <= 1024)            signatures, configured keys
    label     u16 len || UTF-8 (<= 256 bytes)           peer session labels
    session   u8 len || bytes (<= 64)                   client session ids
    hashes    u32 n || n * 32 bytes (n <= MAX_HASHES)   tx hashes (cached_tx_hashes: sorted)
    context   tx_hash(32) fee(u64) tombstone(u64) u8 n key images(32) u8 n output
              keys(32) u8 n highest indices(u64)        a `WellFormedTxContext`
    block     u16 len || `Block.to_bytes()`
    formed    u8 has_block (0|1) [blob `BlockData.to_bytes()`] || hashes included ||
              u32 n || n * (hash(32) u16 ProposeTxResult)   a `FormedBlock`
    peer      identity(32) block signer(32) mrenclave(32) u8 attested u8 simulated
                                                        a `PeerEnclave`
    identity  identity key(32) block signer(32) mrenclave(32) mrsigner(32) isv_prod_id(u16)
              isv_svn(u16) pid(u32) u8 n * (u8 len name || u8 applied || u16 len detail)
              u8 len attestation mode (UTF-8, <= 16) || evidence_expires(u64)
                                                        an `EnclaveIdentity`

Errors carry the exception's kind (`ErrorKind`, one per `EnclaveError` class the enclave
raises), its `ProposeTxResult` if it has one, and its message, and are rebuilt on the host
as the same class with the same message and attributes (`code`, `UnknownTx.tx_hashes`),
so the host's `except` clauses work as they did in-process. Any other exception inside the
enclave crosses as `EnclaveInternalError` naming only its type.

How a client uses this module (the service's asyncio client, `process.EnclaveProcess`):

    send(encode_request(request_id, Method.PEER_INFO, "out:n1"))
    header = read(HEADER_BYTES); body = read(frame_length(header))
    request_id = response_id(body)             # which request this answers
    _, peer = decode_response(body, Method.PEER_INFO)   # raises the carried EnclaveError

Requests are answered one at a time, in the order they were sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

from mcnode import binary
from mcnode.enclave.api import (
    EnclaveIdentity,
    FormedBlock,
    HardeningStep,
    PeerEnclave,
    PeerHandshake,
    SessionId,
)
from mcnode.enclave.enclave import MAX_PEER_BATCH_TXS
from mcnode.enclave.errors import (
    CapacityError,
    EnclaveError,
    EnclaveInternalError,
    IpcError,
    MessageDecodeError,
    MessageTooLarge,
    PeerAuthError,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    SealError,
    SessionError,
    StaleParent,
    TxRejected,
    UnknownTx,
)
from mcnode.ledger.block import Block, BlockData
from mcnode.transaction.tx import MAX_INPUTS, MAX_OUTPUTS
from mcnode.transaction.validation import WellFormedTxContext

T = TypeVar("T")
U = TypeVar("U")

#: Largest frame body, either way (a peer batch is at most 32 MiB of plaintext).
MAX_FRAME = 64 * 1024 * 1024
HEADER_BYTES = 4
#: Largest opaque byte string in a frame (what is left once the fixed fields are in).
MAX_BLOB = MAX_FRAME - 4096
#: Most tx hashes in one list (the enclave holds at most a few hundred thousand txs).
MAX_HASHES = 1_000_000
MAX_LABEL_BYTES = 256
MAX_SESSION_ID_BYTES = 64
MAX_SMALL_BYTES = 1024
MAX_MESSAGE_BYTES = 1024
MAX_HARDENING_STEPS = 16
MAX_MODE_BYTES = 16
NO_CODE = 0xFFFF
STATUS_OK = 0
STATUS_ERROR = 1


class Method(IntEnum):
    """One per `EnclaveApi` call, plus `IDENTITY`. Stable numbers: never renumber."""

    IDENTITY = 0
    CLIENT_HANDSHAKE = 1
    CLIENT_TX_PROPOSE = 2
    CLIENT_CLOSE = 3
    PEER_INITIATE = 4
    PEER_ACCEPT = 5
    PEER_COMPLETE = 6
    PEER_INFO = 7
    TXS_FOR_PEER = 8
    SEAL_FETCH = 9
    ANSWER_FETCH = 10
    PEER_TX_PROPOSE = 11
    BLOCK_APPENDED = 12
    FORM_BLOCK = 13
    FORGET = 14
    CACHED_TX_HASHES = 15


class ErrorKind(IntEnum):
    """The error classes that cross the boundary. Stable numbers: never renumber."""

    ENCLAVE = 1
    PROPOSE_TX = 2
    SESSION = 3
    MESSAGE_DECODE = 4
    CAPACITY = 5
    TX_REJECTED = 6
    UNKNOWN_TX = 7
    PEER_SESSION = 8
    PEER_AUTH = 9
    STALE_PARENT = 10
    MESSAGE_TOO_LARGE = 11
    SEAL = 12
    INTERNAL = 13
    IPC = 14


ERROR_CLASSES: dict[ErrorKind, type[EnclaveError]] = {
    ErrorKind.ENCLAVE: EnclaveError,
    ErrorKind.PROPOSE_TX: ProposeTxError,
    ErrorKind.SESSION: SessionError,
    ErrorKind.MESSAGE_DECODE: MessageDecodeError,
    ErrorKind.CAPACITY: CapacityError,
    ErrorKind.TX_REJECTED: TxRejected,
    ErrorKind.UNKNOWN_TX: UnknownTx,
    ErrorKind.PEER_SESSION: PeerSessionError,
    ErrorKind.PEER_AUTH: PeerAuthError,
    ErrorKind.STALE_PARENT: StaleParent,
    ErrorKind.MESSAGE_TOO_LARGE: MessageTooLarge,
    ErrorKind.SEAL: SealError,
    ErrorKind.INTERNAL: EnclaveInternalError,
    ErrorKind.IPC: IpcError,
}
_KINDS = {cls: kind for kind, cls in ERROR_CLASSES.items()}


class _Reader(binary.Reader):
    __slots__ = ()
    error = IpcError
    max_size = MAX_FRAME


# -- fields ------------------------------------------------------------------------------


class Field(ABC, Generic[T]):
    """How one argument or result is written and read."""

    @abstractmethod
    def write(self, w: binary.Writer, value: T) -> None: ...

    @abstractmethod
    def read(self, r: _Reader) -> T: ...


class _Nothing(Field[None]):
    def write(self, w: binary.Writer, value: None) -> None:
        if value is not None:
            raise ValueError("this call returns nothing")

    def read(self, r: _Reader) -> None:
        return None


class _Bytes(Field[bytes]):
    def __init__(self, limit: int, width: int, what: str) -> None:
        self.limit, self.width, self.what = limit, width, what

    def write(self, w: binary.Writer, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"{self.what} must be bytes, not {type(value).__name__}")
        w.var(value, self.limit, width=self.width, what=self.what)

    def read(self, r: _Reader) -> bytes:
        return r.var(self.limit, width=self.width, what=self.what)


class _Fixed(Field[bytes]):
    def __init__(self, size: int) -> None:
        self.size = size

    def write(self, w: binary.Writer, value: bytes) -> None:
        w.fixed(value, self.size)

    def read(self, r: _Reader) -> bytes:
        return r.fixed(self.size)


class _U64(Field[int]):
    def write(self, w: binary.Writer, value: int) -> None:
        w.u64(value)

    def read(self, r: _Reader) -> int:
        return r.u64()


class _Label(Field[str]):
    def write(self, w: binary.Writer, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a label is a str, not {type(value).__name__}")
        w.var(value.encode(), MAX_LABEL_BYTES, width=2, what="label")

    def read(self, r: _Reader) -> str:
        return _utf8(r.var(MAX_LABEL_BYTES, width=2, what="label"))


class _Session(Field[SessionId]):
    def write(self, w: binary.Writer, value: SessionId) -> None:
        w.var(value, MAX_SESSION_ID_BYTES, width=1, what="session id")

    def read(self, r: _Reader) -> SessionId:
        return SessionId(r.var(MAX_SESSION_ID_BYTES, width=1, what="session id"))


class _Hashes(Field[list[bytes]]):
    def write(self, w: binary.Writer, value: Sequence[bytes]) -> None:
        w.count(len(value), MAX_HASHES, width=4, what="tx hashes")
        for h in value:
            w.fixed(h, 32)

    def read(self, r: _Reader) -> list[bytes]:
        return [r.fixed(32) for _ in range(r.count(MAX_HASHES, width=4, what="tx hashes"))]


class _HashSet(Field[frozenset[bytes]]):
    def write(self, w: binary.Writer, value: frozenset[bytes]) -> None:
        HASHES.write(w, sorted(value))

    def read(self, r: _Reader) -> frozenset[bytes]:
        return frozenset(HASHES.read(r))


class _Pair(Field[tuple[T, U]]):
    def __init__(self, first: Field[T], second: Field[U]) -> None:
        self.first, self.second = first, second

    def write(self, w: binary.Writer, value: tuple[T, U]) -> None:
        first, second = value
        self.first.write(w, first)
        self.second.write(w, second)

    def read(self, r: _Reader) -> tuple[T, U]:
        return self.first.read(r), self.second.read(r)


class _Context(Field[WellFormedTxContext]):
    def write(self, w: binary.Writer, value: WellFormedTxContext) -> None:
        w.fixed(value.tx_hash, 32)
        w.u64(value.fee)
        w.u64(value.tombstone_block)
        _write_fixed_list(w, value.key_images, MAX_INPUTS, "key images")
        _write_fixed_list(w, value.output_public_keys, MAX_OUTPUTS, "output keys")
        w.count(len(value.highest_indices), MAX_INPUTS, width=1, what="indices")
        for index in value.highest_indices:
            w.u64(index)

    def read(self, r: _Reader) -> WellFormedTxContext:
        tx_hash, fee, tombstone = r.fixed(32), r.u64(), r.u64()
        images = _read_fixed_list(r, MAX_INPUTS, "key images")
        outputs = _read_fixed_list(r, MAX_OUTPUTS, "output keys")
        n = r.count(MAX_INPUTS, width=1, what="indices")
        indices = tuple(r.u64() for _ in range(n))
        return WellFormedTxContext(tx_hash, fee, tombstone, images, outputs, indices)


class _Contexts(Field[list[WellFormedTxContext]]):
    LIMIT = MAX_PEER_BATCH_TXS  # what one peer batch can hold

    def write(self, w: binary.Writer, value: Sequence[WellFormedTxContext]) -> None:
        w.count(len(value), self.LIMIT, width=4, what="contexts")
        for ctx in value:
            CONTEXT.write(w, ctx)

    def read(self, r: _Reader) -> list[WellFormedTxContext]:
        return [CONTEXT.read(r) for _ in range(r.count(self.LIMIT, width=4, what="contexts"))]


class _Block(Field[Block]):
    def write(self, w: binary.Writer, value: Block) -> None:
        w.var(value.to_bytes(), MAX_SMALL_BYTES, width=2, what="block")

    def read(self, r: _Reader) -> Block:
        return _ledger_value(Block.from_bytes, r.var(MAX_SMALL_BYTES, width=2, what="block"))


class _Formed(Field[FormedBlock]):
    def write(self, w: binary.Writer, value: FormedBlock) -> None:
        w.u8(0 if value.block_data is None else 1)
        if value.block_data is not None:
            BLOB.write(w, value.block_data.to_bytes())
        HASHES.write(w, value.included)
        w.count(len(value.dropped), MAX_HASHES, width=4, what="dropped txs")
        for tx_hash, code in value.dropped:
            w.fixed(tx_hash, 32)
            w.u16(code.value)

    def read(self, r: _Reader) -> FormedBlock:
        data = None
        if _flag(r):
            data = _ledger_value(BlockData.from_bytes, BLOB.read(r))
        included = tuple(HASHES.read(r))
        n = r.count(MAX_HASHES, width=4, what="dropped txs")
        dropped = tuple((r.fixed(32), _result_code(r.u16())) for _ in range(n))
        return FormedBlock(data, included, dropped)


class _PeerHandshake(Field[PeerHandshake]):
    def write(self, w: binary.Writer, value: PeerHandshake) -> None:
        BLOB.write(w, value.message)
        w.fixed(value.transcript, 32)

    def read(self, r: _Reader) -> PeerHandshake:
        return PeerHandshake(BLOB.read(r), r.fixed(32))


class _PeerEnclave(Field[PeerEnclave]):
    def write(self, w: binary.Writer, value: PeerEnclave) -> None:
        w.fixed(value.identity, 32)
        w.fixed(value.block_signer, 32)
        w.fixed(value.mrenclave, 32)
        w.u8(1 if value.attested else 0)
        w.u8(1 if value.simulated else 0)

    def read(self, r: _Reader) -> PeerEnclave:
        return PeerEnclave(r.fixed(32), r.fixed(32), r.fixed(32), _flag(r), _flag(r))


class _Identity(Field[EnclaveIdentity]):
    def write(self, w: binary.Writer, value: EnclaveIdentity) -> None:
        w.fixed(value.identity_public_key, 32)
        w.fixed(value.block_signing_public_key, 32)
        w.fixed(value.measurement, 32)
        w.fixed(value.mrsigner, 32)
        w.u16(value.isv_prod_id)
        w.u16(value.isv_svn)
        w.u32(value.pid)
        w.count(len(value.hardening), MAX_HARDENING_STEPS, width=1, what="hardening steps")
        for step in value.hardening:
            w.var(step.name.encode(), 64, width=1, what="step name")
            w.u8(1 if step.applied else 0)
            w.var(step.detail.encode(), 256, width=2, what="step detail")
        w.var(value.attestation_mode.encode(), MAX_MODE_BYTES, width=1, what="attestation mode")
        w.u64(value.evidence_expires)

    def read(self, r: _Reader) -> EnclaveIdentity:
        identity, signer, measurement = r.fixed(32), r.fixed(32), r.fixed(32)
        mrsigner, isv_prod_id, isv_svn, pid = r.fixed(32), r.u16(), r.u16(), r.u32()
        n = r.count(MAX_HARDENING_STEPS, width=1, what="hardening steps")
        steps = tuple(
            HardeningStep(
                _utf8(r.var(64, width=1, what="step name")),
                _flag(r),
                _utf8(r.var(256, width=2, what="step detail")),
            )
            for _ in range(n)
        )
        mode = _utf8(r.var(MAX_MODE_BYTES, width=1, what="attestation mode"))
        return EnclaveIdentity(
            identity, signer, measurement, mrsigner, isv_prod_id, isv_svn, pid, steps, mode, r.u64()
        )


def _write_fixed_list(w: binary.Writer, items: Sequence[bytes], limit: int, what: str) -> None:
    w.count(len(items), limit, width=1, what=what)
    for item in items:
        w.fixed(item, 32)


def _read_fixed_list(r: _Reader, limit: int, what: str) -> tuple[bytes, ...]:
    return tuple(r.fixed(32) for _ in range(r.count(limit, width=1, what=what)))


def _flag(r: _Reader) -> bool:
    flag = r.u8()
    if flag > 1:
        raise IpcError(f"a flag is 0 or 1, not {flag}")
    return flag == 1


def _utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        pass
    raise IpcError("text is not UTF-8")


def _result_code(value: int) -> ProposeTxResult:
    try:
        return ProposeTxResult(value)
    except ValueError:
        pass
    raise IpcError(f"unknown result code {value}")


def _ledger_value(decode: Callable[[bytes], T], data: bytes) -> T:
    try:
        return decode(data)
    except ValueError as e:  # the ledger's DecodeError, or a value its types refuse
        message = str(e)
    raise IpcError(f"not a canonical encoding: {message}")


NOTHING = _Nothing()
BLOB = _Bytes(MAX_BLOB, 4, "blob")
SMALL = _Bytes(MAX_SMALL_BYTES, 2, "field")
LABEL = _Label()
SESSION = _Session()
HASHES = _Hashes()
CONTEXT = _Context()


@dataclass(frozen=True, slots=True)
class Spec:
    """A method's `EnclaveApi` name (None: `IDENTITY`, the server's own), its arguments
    in order, and its result."""

    call: str | None
    args: tuple[Field[Any], ...]
    result: Field[Any]


SPECS: dict[Method, Spec] = {
    Method.IDENTITY: Spec(None, (), _Identity()),
    Method.CLIENT_HANDSHAKE: Spec("client_handshake", (BLOB,), _Pair(SESSION, BLOB)),
    Method.CLIENT_TX_PROPOSE: Spec("client_tx_propose", (SESSION, BLOB), CONTEXT),
    Method.CLIENT_CLOSE: Spec("client_close", (SESSION,), NOTHING),
    Method.PEER_INITIATE: Spec("peer_initiate", (LABEL,), _PeerHandshake()),
    Method.PEER_ACCEPT: Spec(
        "peer_accept", (LABEL, BLOB, SMALL, SMALL), _Pair(_PeerHandshake(), _PeerEnclave())
    ),
    Method.PEER_COMPLETE: Spec("peer_complete", (LABEL, BLOB, SMALL, SMALL), _PeerEnclave()),
    Method.PEER_INFO: Spec("peer_info", (LABEL,), _PeerEnclave()),
    Method.TXS_FOR_PEER: Spec("txs_for_peer", (LABEL, HASHES), BLOB),
    Method.SEAL_FETCH: Spec("seal_fetch", (LABEL, HASHES), BLOB),
    Method.ANSWER_FETCH: Spec("answer_fetch", (LABEL, BLOB), BLOB),
    Method.PEER_TX_PROPOSE: Spec("peer_tx_propose", (LABEL, BLOB), _Contexts()),
    Method.BLOCK_APPENDED: Spec("block_appended", (_U64(), HASHES), HASHES),
    Method.FORM_BLOCK: Spec("form_block", (HASHES, _Block(), _U64()), _Formed()),
    Method.FORGET: Spec("forget", (HASHES,), NOTHING),
    Method.CACHED_TX_HASHES: Spec("cached_tx_hashes", (), _HashSet()),
}


# -- frames ------------------------------------------------------------------------------


def frame_length(header: bytes) -> int:
    """The body length a frame's 4-byte header announces; `IpcError` over `MAX_FRAME`
    (the reader must then stop reading the stream: it cannot find the next frame)."""
    if len(header) != HEADER_BYTES:
        raise IpcError(f"a frame header is {HEADER_BYTES} bytes")
    length = int.from_bytes(header, "little")
    if length > MAX_FRAME:
        raise IpcError(f"frame of {length} bytes is over the limit of {MAX_FRAME}")
    return length


def _frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise MessageTooLarge(f"frame of {len(body)} bytes is over the limit of {MAX_FRAME}")
    return len(body).to_bytes(HEADER_BYTES, "little") + body


def encode_request(request_id: int, method: Method, *args: Any) -> bytes:
    """The whole frame of a request. `args` as the `EnclaveApi` method takes them.
    Raises `ValueError`/`TypeError`/`OverflowError` for arguments the codec cannot carry
    (a caller's bug: a hash that is not 32 bytes, a count over its limit) and
    `MessageTooLarge` for a frame over `MAX_FRAME`."""
    spec = SPECS[Method(method)]
    if len(args) != len(spec.args):
        raise TypeError(f"{method.name} takes {len(spec.args)} arguments, not {len(args)}")
    w = binary.Writer()
    w.u32(request_id)
    w.u8(method)
    for field, arg in zip(spec.args, args, strict=True):
        field.write(w, arg)
    return _frame(w.getvalue())


def decode_request(body: bytes) -> tuple[int, Method, tuple[Any, ...]]:
    """(request id, method, arguments) of a request body. `IpcError` when it does not
    decode; its `request_id` is set when the id could be read (answer with the error)."""
    r = _Reader(body)
    request_id = r.u32()
    try:
        raw = r.u8()
        if raw not in Method._value2member_map_:
            raise IpcError(f"unknown method {raw}")
        method = Method(raw)
        args = tuple(field.read(r) for field in SPECS[method].args)
        r.finish()
    except IpcError as e:
        message = str(e)
    else:
        return request_id, method, args
    raise IpcError(f"request {request_id}: {message}", request_id)


def encode_response(request_id: int, method: Method | None, result: Any) -> bytes:
    """The whole frame of a response: `result` is what the call returned, or the
    `EnclaveError` it raised (then `method` may be None: an error needs no method).
    Raises like `encode_request` for a result the codec cannot carry."""
    w = binary.Writer()
    w.u32(request_id)
    if isinstance(result, EnclaveError):
        w.u8(STATUS_ERROR)
        _write_error(w, result)
    else:
        if method is None:
            raise TypeError("a result needs its method")
        w.u8(STATUS_OK)
        SPECS[Method(method)].result.write(w, result)
    return _frame(w.getvalue())


def response_id(body: bytes) -> int:
    """The request id a response body answers (`IpcError` if it has none)."""
    r = _Reader(body[:4])
    return r.u32()


def decode_response(body: bytes, method: Method) -> tuple[int, Any]:
    """(request id, result) of a response body to a `method` request. Raises the carried
    `EnclaveError`, rebuilt, when the enclave answered with one; `IpcError` when the body
    does not decode."""
    r = _Reader(body)
    request_id = r.u32()
    status = r.u8()
    if status == STATUS_OK:
        result = SPECS[Method(method)].result.read(r)
        r.finish()
        return request_id, result
    if status != STATUS_ERROR:
        raise IpcError(f"unknown response status {status}")
    error = _read_error(r)
    r.finish()
    raise error


# -- errors ------------------------------------------------------------------------------


def error_kind(error: EnclaveError) -> ErrorKind:
    """The kind an error crosses as: its class's, or its nearest known base class's."""
    for cls in type(error).__mro__:
        kind = _KINDS.get(cls)
        if kind is not None:
            return kind
    return ErrorKind.ENCLAVE  # unreachable: EnclaveError itself is known


def _write_error(w: binary.Writer, error: EnclaveError) -> None:
    kind = error_kind(error)
    code = getattr(error, "code", None)
    message = str(error).encode()[:MAX_MESSAGE_BYTES].decode(errors="ignore")
    hashes = error.tx_hashes if isinstance(error, UnknownTx) else ()
    w.u8(kind)
    w.u16(code.value if isinstance(code, ProposeTxResult) else NO_CODE)
    w.var(message.encode(), MAX_MESSAGE_BYTES, width=2, what="error message")
    HASHES.write(w, hashes)


def _read_error(r: _Reader) -> EnclaveError:
    raw_kind, raw_code = r.u8(), r.u16()
    message = _utf8(r.var(MAX_MESSAGE_BYTES, width=2, what="error message"))
    hashes = tuple(HASHES.read(r))
    if raw_kind not in ErrorKind._value2member_map_:
        raise IpcError(f"unknown error kind {raw_kind}")
    cls = ERROR_CLASSES[ErrorKind(raw_kind)]
    code = None if raw_code == NO_CODE else _result_code(raw_code)
    if (code is not None) != issubclass(cls, ProposeTxError):
        raise IpcError(f"error kind {ErrorKind(raw_kind).name} with a wrong result code")
    # Built without __init__, so that the message is the enclave's, word for word.
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    if code is not None:
        error.code = code  # type: ignore[attr-defined]
    if isinstance(error, UnknownTx):
        error.tx_hashes = hashes
    if isinstance(error, IpcError):
        error.request_id = None
    if isinstance(error, PeerAuthError):
        error.reason = PeerAuthError.reason_in(message)
    return error
