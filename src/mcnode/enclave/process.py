"""The host's blocking proxy to the enclave process: it starts `python -m mcnode.enclave
serve` on one end of a socketpair and implements `EnclaveApi` over `ipc` frames.

For tests, tools and benchmarks; the service's asyncio client speaks the same frames and
starts the process with the same `serve_command`. This module runs in the host process
and is not part of the measured enclave code: it sees only what `EnclaveApi` returns
(contexts, ciphertext, handshake messages, public keys, redacted blocks).

    with EnclaveProcess.start(ledger_dir, keys_dir) as enclave:
        enclave.identity().hardening        # what the process did to keep us out
        session, reply = enclave.client_handshake(msg1)

Calls are made one at a time (a lock), so threads may share a proxy. When the process is
gone, every call raises `EnclaveProcessError` naming its exit code.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from mcnode.enclave import ipc
from mcnode.enclave.api import (
    EnclaveApi,
    EnclaveIdentity,
    FormedBlock,
    PeerEnclave,
    PeerHandshake,
    SessionId,
)
from mcnode.enclave.errors import EnclaveError, IpcError
from mcnode.ledger.block import Block
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE, WellFormedTxContext

Method = ipc.Method


class EnclaveProcessError(EnclaveError):
    """The enclave process is gone (or never started): no call can be answered."""


def serve_command(
    fd: int,
    ledger: str | os.PathLike[str],
    keys: str | os.PathLike[str],
    minimum_fee: int = DEFAULT_MINIMUM_FEE,
    python: str = sys.executable,
    *,
    css: str | os.PathLike[str] | None = None,
    attestation: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command line of an enclave process serving on inherited descriptor `fd`, for
    this process (its host: the enclave dies with it). With `css`, the process starts
    only if that signed `.css` names its measurement, and reports its signer. With
    `attestation` (an `attest.config` JSON file) it attests as that file says; without
    it, attestation is off (no evidence offered or required: tests and tools only)."""
    command = [
        python,
        "-m",
        "mcnode.enclave",
        "serve",
        "--fd",
        str(fd),
        "--ledger",
        str(Path(ledger)),
        "--keys",
        str(Path(keys)),
        "--minimum-fee",
        str(minimum_fee),
        "--host-pid",
        str(os.getpid()),
    ]
    if css is not None:
        command += ["--css", str(Path(css))]
    if attestation is not None:
        command += ["--attestation", str(Path(attestation))]
    return command


class EnclaveProcess(EnclaveApi):
    """`EnclaveApi` served by a child process; `start` it, `close` it."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self._sock = sock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._identity = self.identity()

    def __repr__(self) -> str:
        return f"<EnclaveProcess pid={self.process.pid} exit={self.process.returncode}>"

    @classmethod
    def start(
        cls,
        ledger: str | os.PathLike[str],
        keys: str | os.PathLike[str],
        *,
        minimum_fee: int = DEFAULT_MINIMUM_FEE,
        stderr: IO[Any] | int | None = None,
        env: Mapping[str, str] | None = None,
        css: str | os.PathLike[str] | None = None,
        attestation: str | os.PathLike[str] | None = None,
    ) -> EnclaveProcess:
        """Start the enclave process (with the signed `.css` of its build, if given) and
        wait for its `IDENTITY`; `EnclaveProcessError` if it exits instead (its stderr
        says why)."""
        host_end, child_end = socket.socketpair()
        try:
            process = subprocess.Popen(
                serve_command(
                    child_end.fileno(), ledger, keys, minimum_fee, css=css, attestation=attestation
                ),
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=None if env is None else dict(env),
            )
        except BaseException:
            host_end.close()
            raise
        finally:
            child_end.close()
        try:
            return cls(process, host_end)
        except BaseException:
            host_end.close()
            process.wait()
            raise

    def close(self) -> int:
        """Close our end (the process exits 0 on it) and wait: its exit code."""
        with self._lock:
            self._sock.close()
        return self.process.wait()

    def __enter__(self) -> EnclaveProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire ------------------------------------------------------------------------

    def call(self, method: ipc.Method, *args: Any) -> Any:
        """One request and its response; raises the enclave's error, rebuilt."""
        with self._lock:
            request_id = next(self._ids) & 0xFFFFFFFF
            frame = ipc.encode_request(request_id, method, *args)
            body = self._exchange(frame)
        if ipc.response_id(body) != request_id:
            raise IpcError(f"response to request {ipc.response_id(body)}, not {request_id}")
        return ipc.decode_response(body, method)[1]

    def _exchange(self, frame: bytes) -> bytes:
        try:
            self._sock.sendall(frame)
            header = self._read_exactly(ipc.HEADER_BYTES)
            return self._read_exactly(ipc.frame_length(header))
        except OSError as e:
            failure = e.strerror or type(e).__name__
        raise EnclaveProcessError(f"{self._gone()}: {failure}")

    def _read_exactly(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        while pos < n:
            got = self._sock.recv_into(view[pos:], n - pos)
            if got == 0:
                raise EnclaveProcessError(self._gone())
            pos += got
        return bytes(buf)

    def _gone(self) -> str:
        code = self.process.wait()  # it closed its end: it is exiting
        return f"the enclave process (pid {self.process.pid}) exited with code {code}"

    # -- EnclaveApi ----------------------------------------------------------------------

    def identity(self) -> EnclaveIdentity:
        identity: EnclaveIdentity = self.call(Method.IDENTITY)
        return identity

    @property
    def identity_public_key(self) -> bytes:
        return self._identity.identity_public_key

    @property
    def block_signing_public_key(self) -> bytes:
        return self._identity.block_signing_public_key

    def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        result: tuple[SessionId, bytes] = self.call(Method.CLIENT_HANDSHAKE, msg1)
        return result

    def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        result: WellFormedTxContext = self.call(Method.CLIENT_TX_PROPOSE, session, ciphertext)
        return result

    def client_close(self, session: SessionId) -> None:
        self.call(Method.CLIENT_CLOSE, session)

    def peer_initiate(self, label: str) -> PeerHandshake:
        result: PeerHandshake = self.call(Method.PEER_INITIATE, label)
        return result

    def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        result: tuple[PeerHandshake, PeerEnclave] = self.call(
            Method.PEER_ACCEPT, label, message, signature, peer_message_key
        )
        return result

    def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        result: PeerEnclave = self.call(
            Method.PEER_COMPLETE, label, message, signature, peer_message_key
        )
        return result

    def peer_info(self, label: str) -> PeerEnclave:
        result: PeerEnclave = self.call(Method.PEER_INFO, label)
        return result

    def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        result: bytes = self.call(Method.TXS_FOR_PEER, label, tx_hashes)
        return result

    def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        result: bytes = self.call(Method.SEAL_FETCH, label, tx_hashes)
        return result

    def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        result: bytes = self.call(Method.ANSWER_FETCH, label, sealed_request)
        return result

    def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        result: list[WellFormedTxContext] = self.call(Method.PEER_TX_PROPOSE, label, ciphertext)
        return result

    def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        result: list[bytes] = self.call(Method.BLOCK_APPENDED, block_index, done)
        return result

    def form_block(self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int) -> FormedBlock:
        result: FormedBlock = self.call(Method.FORM_BLOCK, tx_hashes, parent, signed_at)
        return result

    def forget(self, tx_hashes: Sequence[bytes]) -> None:
        self.call(Method.FORGET, tx_hashes)

    def cached_tx_hashes(self) -> frozenset[bytes]:
        result: frozenset[bytes] = self.call(Method.CACHED_TX_HASHES)
        return result
