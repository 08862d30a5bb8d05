"""The enclave process: serves `EnclaveApi` over one inherited socket, a request at a time.

    python -m mcnode.enclave serve --fd N --ledger DIR --keys DIR --minimum-fee N
                                   [--host-pid PID] [--css FILE] [--attestation FILE]

The host makes a `socket.socketpair()`, passes one end as fd N and keeps the other
(`process.serve_command` builds this command line). At start the process hardens itself
(`hardening`), measures its code (`measure`), checks that the `.css` of `--css`, if given,
signs that measurement (`css`: it then reports the `.css`'s MRSIGNER, product id and SVN;
without one, an unsigned build's zeros), unseals its keys or makes and seals new ones
(`sealing`, in DIR of `--keys`), opens the ledger read-only (it reads blocks the host
appends; it never writes), reads the attestation configuration of `--attestation`, if
given (`attest.config`: in mode "sim" it loads the network's simulated PKI and is its own
quoting enclave, quoting the measurement and the `.css`'s signer and ids), builds the
`Enclave`, and then answers `ipc` frames in order until the host closes its end.

Two threads: one reads frames into a bounded queue (`MAX_READ_AHEAD`), the other answers
them in order. Tx proposals queued together, clients' and peers' batches alike (the host
keeps several in flight), are answered by one `Enclave.txs_propose` call, which checks
the range proofs of all their new txs as one batch and their ring signatures beside it
(`MAX_GATHER`, `GATHER_SECONDS`); each still gets its own response, the same as if it had
come alone. Verification is native code that releases the GIL, so frames are read
meanwhile. Without `--attestation` the enclave runs with attestation "off": it offers no
evidence and requires none, which only tests and tools should do.

- A request that does not decode is answered with an `IpcError` when its id could be
  read, and otherwise skipped (its length is known); a call's `EnclaveError` goes back as
  the error response; any other exception goes back as `EnclaveInternalError` naming only
  its type, and the process carries on.
- A frame announcing more than `ipc.MAX_FRAME` bytes ends the connection: the stream
  cannot be trusted to find the next frame.

Exit codes: 0 the host closed the socket; 2 a bad command line or socket, or a frame over
`MAX_FRAME`; 3 cannot start (a `.css` that is unreadable, forged or signs another
measurement, keys that do not unseal, a ledger that does not open, an attestation file
that does not read or whose simulated PKI does not load, mode "dcap"): one line saying
what to do.

Stderr: one `key=value` line per event (started, with the curve backend the verifiers run
on, `_native.curve_backend`, and how long the verifiers' one-time set-up took,
`_native.warm_up`, done before the first request; bad request, internal error, oversized
frame, stopped: with the counts of requests, errors, client-proposal batches and the
proposals answered in them). Never plaintext, keys or session secrets: counts, request
ids, method names, error type names, the measurement, MRSIGNER and public keys only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcnode import _native
from mcnode.attest.config import AttestationConfigError, read_attestation_file
from mcnode.enclave import ipc
from mcnode.enclave.api import EnclaveIdentity, HardeningStep
from mcnode.enclave.attestation import CodeIdentity
from mcnode.enclave.css import NO_MRSIGNER, CssError, load_css
from mcnode.enclave.enclave import Enclave, EnclaveConfig
from mcnode.enclave.errors import (
    EnclaveError,
    EnclaveInternalError,
    IpcError,
    MessageTooLarge,
    SealError,
)
from mcnode.enclave.hardening import HostGone, harden
from mcnode.enclave.measure import MeasureError, measure
from mcnode.enclave.sealing import load_or_create
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import LedgerError
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

EXIT_EOF = 0
EXIT_PROTOCOL = 2
EXIT_CANNOT_START = 3


def say(event: str, level: str = "info", **fields: object) -> None:
    """One `key=value` line on stderr (callers pass no secret: see the module rules)."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    parts = [f"ts={ts}Z", f"level={level}", "component=enclave", f"event={_quoted(event)}"]
    parts += [f"{k}={_quoted(str(v))}" for k, v in fields.items()]
    sys.stderr.write(" ".join(parts) + "\n")
    sys.stderr.flush()


def _quoted(s: str) -> str:
    if s and not any(c.isspace() or c in '"=' for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


#: Tx proposals (`GATHERED`) answered by one `Enclave.txs_propose` call (the range proofs
#: of their new txs checked as one batch): the first, every one queued behind it, at most
#: this many...
MAX_GATHER = 64
#: ... and, when two or more were queued already (the enclave is busy: more are coming),
#: those that arrive within this long of the first. A lone proposal never waits.
GATHER_SECONDS = 0.003
#: The requests gathered: they only add txs to the enclave, so answering them together
#: changes no answer (each kind is opened in order: a session's messages stay in order).
GATHERED = frozenset({ipc.Method.CLIENT_TX_PROPOSE, ipc.Method.PEER_TX_PROPOSE})
#: Frames read ahead of the one being answered (then the reader waits: the host's writes
#: wait in turn).
MAX_READ_AHEAD = 2 * MAX_GATHER


@dataclass
class Served:
    requests: int = 0
    errors: int = 0
    batches: int = 0  # txs_propose calls
    batched: int = 0  # tx proposals (a client's or a peer's) answered in them


@dataclass(frozen=True, slots=True)
class _Request:
    id: int
    method: ipc.Method
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A request body that does not decode: the error response, if it had an id."""

    response: bytes | None


@dataclass(frozen=True, slots=True)
class _Ended:
    """The host's stream ended (or can no longer be followed): how to stop."""

    code: int
    event: str
    level: str
    fields: tuple[tuple[str, object], ...] = ()


def _decode(body: bytes, served: Served) -> _Request | _Undecodable:
    try:
        request_id, method, args = ipc.decode_request(body)
    except IpcError as e:
        served.errors += 1
        say("bad request", "warning", id=e.request_id, bytes=len(body), error=str(e))
        return _Undecodable(
            None if e.request_id is None else ipc.encode_response(e.request_id, None, e)
        )
    served.requests += 1
    return _Request(request_id, method, args)


def handle(
    enclave: Enclave, identity: EnclaveIdentity, body: bytes, served: Served
) -> bytes | None:
    """The response frame to one request body (None: skipped, no id to answer to)."""
    request = _decode(body, served)
    if isinstance(request, _Undecodable):
        return request.response
    return _answer(enclave, identity, request, served)


def _answer(
    enclave: Enclave, identity: EnclaveIdentity, request: _Request, served: Served
) -> bytes:
    call = ipc.SPECS[request.method].call
    result: object = identity
    if call is None:  # IDENTITY: with the expiry of the evidence served from now on
        result = dataclasses.replace(identity, evidence_expires=enclave.evidence_expires())
    if call is not None:
        try:
            result = getattr(enclave, call)(*request.args)
        except EnclaveError as e:
            result = e
        except Exception as e:  # a bug: answer, say which type, keep serving
            result = _internal(served, request.id, request.method, "failed", type(e).__name__)
    return _response(request, result, served)


def _response(request: _Request, result: object, served: Served) -> bytes:
    try:
        return ipc.encode_response(request.id, request.method, result)
    except MessageTooLarge as e:
        return ipc.encode_response(request.id, request.method, e)
    except (ValueError, TypeError, OverflowError) as e:
        failure = _internal(
            served, request.id, request.method, "result does not encode", type(e).__name__
        )
        return ipc.encode_response(request.id, request.method, failure)


def _propose_all(enclave: Enclave, requests: list[_Request], served: Served) -> bytes:
    """The responses to tx proposals (clients' and peers'), in order, from one
    `txs_propose`."""
    served.batches += 1
    served.batched += len(requests)
    clients = [r.args for r in requests if r.method is ipc.Method.CLIENT_TX_PROPOSE]
    peers = [r.args for r in requests if r.method is ipc.Method.PEER_TX_PROPOSE]
    try:
        for_clients, for_peers = enclave.txs_propose(clients, peers)
        of = {
            ipc.Method.CLIENT_TX_PROPOSE: iter(for_clients),
            ipc.Method.PEER_TX_PROPOSE: iter(for_peers),
        }
        results: list[object] = [next(of[r.method]) for r in requests]
    except Exception as e:  # a bug: every proposal is answered with it
        results = [_internal(served, r.id, r.method, "failed", type(e).__name__) for r in requests]
    return b"".join(_response(r, x, served) for r, x in zip(requests, results, strict=True))


def _internal(
    served: Served, request_id: int, method: ipc.Method, what: str, error: str
) -> EnclaveInternalError:
    served.errors += 1
    say("internal error", "error", id=request_id, method=method.name, what=what, error=error)
    return EnclaveInternalError(f"the enclave's {method.name} {what}: {error}")


def serve(sock: socket.socket, enclave: Enclave, identity: EnclaveIdentity) -> int:
    """Answer frames until the host closes its end; the exit code."""
    served = Served()
    try:
        return _serve(sock, enclave, identity, served)
    except OSError as e:  # the host went away mid-call (reset, broken pipe)
        say(
            "stopped",
            "warning",
            requests=served.requests,
            batches=served.batches,
            batched=served.batched,
            error=e.strerror or type(e).__name__,
        )
        return EXIT_EOF


def _serve(sock: socket.socket, enclave: Enclave, identity: EnclaveIdentity, served: Served) -> int:
    """Requests are read by a thread of their own into `inbox` while this one answers
    them, in order. A tx proposal is answered together with the tx proposals queued
    right behind it (`_gather`), in one call, so their range proofs are checked as one
    batch; the enclave releases the GIL while it verifies, so reading goes on."""
    inbox: queue.Queue[bytes | _Ended] = queue.Queue(MAX_READ_AHEAD)
    reader = threading.Thread(
        target=_read_frames, args=(sock, inbox), name="enclave-ipc-reader", daemon=True
    )
    reader.start()
    ahead: _Request | _Undecodable | _Ended | None = None
    while True:
        item = ahead if ahead is not None else _next(inbox, served)
        ahead = None
        if isinstance(item, _Ended):
            fields = dict(item.fields)
            say(
                item.event,
                item.level,
                requests=served.requests,
                errors=served.errors,
                batches=served.batches,
                batched=served.batched,
                **fields,
            )
            return item.code
        if isinstance(item, _Undecodable):
            if item.response is not None:
                sock.sendall(item.response)
        elif item.method in GATHERED:
            batch = [item]
            ahead = _gather(inbox, batch, served)
            sock.sendall(_propose_all(enclave, batch, served))
        else:
            sock.sendall(_answer(enclave, identity, item, served))


def _next(
    inbox: queue.Queue[bytes | _Ended], served: Served, timeout: float | None = None
) -> _Request | _Undecodable | _Ended | None:
    """The next request, decoded: waiting for it (`timeout` None), up to `timeout`
    seconds, or not at all (0). None when nothing came."""
    try:
        item = inbox.get(timeout=timeout) if timeout != 0 else inbox.get_nowait()
    except queue.Empty:
        return None
    return item if isinstance(item, _Ended) else _decode(item, served)


def _gather(
    inbox: queue.Queue[bytes | _Ended], batch: list[_Request], served: Served
) -> _Request | _Undecodable | _Ended | None:
    """Add the tx proposals queued behind `batch[0]` to `batch` (see `GATHER_SECONDS`,
    `MAX_GATHER`); the first item that is not one is returned, to be answered next."""
    deadline = time.monotonic() + GATHER_SECONDS
    while len(batch) < MAX_GATHER:
        timeout = 0.0 if len(batch) < 2 else deadline - time.monotonic()
        item = _next(inbox, served, max(timeout, 0.0))
        if item is None:
            return None
        if not isinstance(item, _Request) or item.method not in GATHERED:
            return item
        batch.append(item)
    return None


def _read_frames(sock: socket.socket, inbox: queue.Queue[bytes | _Ended]) -> None:
    """The reader thread: each frame's body into `inbox`, then how the stream ended."""
    try:
        while True:
            header = _read_exactly(sock, ipc.HEADER_BYTES)
            if header is None:
                inbox.put(_Ended(EXIT_EOF, "stopped", "info"))
                return
            try:
                length = ipc.frame_length(header)
            except IpcError:
                length = int.from_bytes(header, "little")
                inbox.put(
                    _Ended(
                        EXIT_PROTOCOL,
                        "frame over the limit",
                        "error",
                        (("bytes", length), ("limit", ipc.MAX_FRAME)),
                    )
                )
                return
            body = _read_exactly(sock, length)
            if body is None:
                inbox.put(_Ended(EXIT_EOF, "stopped", "warning", (("torn_frame", length),)))
                return
            inbox.put(body)
    except OSError as e:  # the host went away mid-frame (reset), or we closed the socket
        inbox.put(
            _Ended(EXIT_EOF, "stopped", "warning", (("error", e.strerror or type(e).__name__),))
        )


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes, or None if the stream ends first."""
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = sock.recv_into(view[pos:], n - pos)
        if got == 0:
            return None
        pos += got
    return bytes(buf)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mcnode.enclave", description="The mcnode enclave process."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve EnclaveApi over an inherited socket")
    run.add_argument("--fd", type=int, required=True, help="the inherited socket's descriptor")
    run.add_argument("--ledger", required=True, help="the node's ledger directory (read-only)")
    run.add_argument("--keys", required=True, help="the directory of the sealed enclave keys")
    run.add_argument("--minimum-fee", type=int, default=DEFAULT_MINIMUM_FEE)
    run.add_argument("--host-pid", type=int, help="the host: we die with it")
    run.add_argument("--css", help="this build's signed .css: start only if it signs us")
    run.add_argument(
        "--attestation",
        help="the attestation configuration (JSON); without it: attestation off, "
        "no evidence offered or required (tests and tools only)",
    )
    sub.add_parser("measure", help="print the measurement of this enclave code (hex)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.command == "measure":
        print(measure().hex())
        return 0
    try:
        steps = harden(keep_fds={args.fd}, host_pid=args.host_pid)  # first, before all else
    except HostGone:
        return 0  # no one to serve, and no one to tell
    # The host stops us by closing the socket. A terminal's Ctrl-C reaches the whole
    # process group; it is the host's to act on, not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock = socket.socket(fileno=args.fd)
    except OSError as e:
        say("cannot start", "error", error=f"--fd {args.fd} is not a socket: {e.strerror}")
        return EXIT_PROTOCOL
    with sock:
        return _run(args, steps, sock)


def _run(args: argparse.Namespace, steps: tuple[HardeningStep, ...], sock: socket.socket) -> int:
    try:
        measurement = measure()
        css = None if args.css is None else load_css(args.css, measurement)
        keys = load_or_create(args.keys, measurement)
        attestation = None if args.attestation is None else read_attestation_file(args.attestation)
        ledger = LedgerDB(args.ledger, readonly=True)
    except (MeasureError, CssError, SealError, LedgerError, AttestationConfigError) as e:
        say("cannot start", "error", error=str(e))
        return EXIT_CANNOT_START
    try:
        try:
            config = EnclaveConfig(
                block_signing_key=keys.block_signing_seed,
                identity_private_key=keys.identity_private,
                minimum_fee=args.minimum_fee,
                attestation=attestation,
                code_identity=CodeIdentity(
                    measurement,
                    NO_MRSIGNER if css is None else css.mrsigner,
                    0 if css is None else css.isv_prod_id,
                    0 if css is None else css.isv_svn,
                ),
            )
        except ValueError as e:
            say("cannot start", "error", error=str(e))
            return EXIT_PROTOCOL
        try:
            enclave = Enclave(config, ledger)
        except AttestationConfigError as e:  # the simulated PKI does not load; "dcap"
            say("cannot start", "error", error=str(e))
            return EXIT_CANNOT_START
        identity = EnclaveIdentity(
            enclave.identity_public_key,
            enclave.block_signing_public_key,
            measurement,
            NO_MRSIGNER if css is None else css.mrsigner,
            0 if css is None else css.isv_prod_id,
            0 if css is None else css.isv_svn,
            os.getpid(),
            steps,
            enclave.attestation_mode,
            enclave.evidence_expires(),
        )
        # The verifiers' one-time set-up (the range proofs' generators), before the first
        # request rather than inside a wallet's first proposal.
        warm_start = time.monotonic()
        _native.warm_up()
        warm_ms = round(1000 * (time.monotonic() - warm_start), 1)
        say(
            "enclave started",
            pid=identity.pid,
            measurement=measurement.hex(),
            mrsigner=identity.mrsigner.hex() if css is not None else "unsigned",
            isv_prod_id=identity.isv_prod_id,
            isv_svn=identity.isv_svn,
            identity=identity.identity_public_key.hex(),
            block_signer=identity.block_signing_public_key.hex(),
            attestation=identity.attestation_mode,
            network=config.network or "-",
            evidence_expires=identity.evidence_expires,
            hardened=",".join(s.name for s in steps if s.applied) or "-",
            not_hardened=",".join(f"{s.name}:{s.detail}" for s in steps if not s.applied) or "-",
            curve_backend=_native.curve_backend(),
            warm_up_ms=warm_ms,
        )
        return serve(sock, enclave, identity)
    finally:
        ledger.close()
