"""The enclave's own process, from the host's side: start it, call it, restart it.

Rules of this file: the only host code that knows the enclave is a child process. It
starts `python -m mcnode.enclave serve` with one end of a socketpair, and speaks the
framed protocol of `enclave.ipc` over the other: each call a request with an id, answered
by a response with that id; several calls may be in flight (the enclave answers them in
order). It implements `EnclavePort`, so the rest of the host just awaits enclave calls.

The enclave process alone holds the enclave's keys (it generates and seals them itself,
under `keys_dir`); the host learns its public keys and measurement from `IDENTITY`. If the
process dies, every call in flight fails with `EnclaveUnavailable`, one line is logged,
`on_restart` tells the node (which drops what the old enclave held and serves no client
meanwhile), and the process is started again (same sealed identities) after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcnode.enclave import EnclaveError, FormedBlock, SessionId, ipc
from mcnode.enclave.api import EnclaveIdentity, PeerEnclave, PeerHandshake
from mcnode.enclave.process import serve_command
from mcnode.ledger.block import Block
from mcnode.node.enclave_port import EnclaveUnavailable
from mcnode.node.logs import NodeLog
from mcnode.transaction.validation import WellFormedTxContext

RESTART_MIN, RESTART_MAX = 0.1, 5.0
START_TIMEOUT = 60.0  # first start: unsealing, opening the ledger, importing the code


class EnclaveStartError(RuntimeError):
    """The enclave process could not start (its last words say why)."""


class EnclaveProcess:
    def __init__(
        self,
        ledger_dir: Path,
        keys_dir: Path,
        minimum_fee: int,
        log: NodeLog,
        on_restart: Callable[[], None] = lambda: None,
        tap: Callable[[str, bytes], None] | None = None,
        *,
        css: Path | None = None,
        attestation: Path | None = None,
    ) -> None:
        self.ledger_dir = ledger_dir
        self.keys_dir = keys_dir
        self.minimum_fee = minimum_fee
        self.css = css  # the enclave starts only if this signs its measurement
        self.attestation = attestation  # the `mcnode-attestation` document it reads
        self.log = log
        self.on_restart = on_restart
        self.tap = tap  # sees every frame ("to"/"from" the enclave): for tests of the boundary
        self.info: EnclaveIdentity | None = None
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[ipc.Method, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._last_words = ""

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._writer is not None and self.info is not None

    async def start(self) -> EnclaveIdentity:
        """Start the process and wait for its identity; `EnclaveStartError` if it dies
        first or takes longer than START_TIMEOUT."""
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        command = serve_command(
            child_end.fileno(),
            self.ledger_dir,
            self.keys_dir,
            self.minimum_fee,
            css=self.css,
            attestation=self.attestation,
        )
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *command,
                pass_fds=(child_end.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            child_end.close()
        reader, self._writer = await asyncio.open_unix_connection(
            sock=host_end, limit=ipc.MAX_FRAME + 8
        )
        self._reader_task = asyncio.create_task(self._read_responses(reader), name="enclave-in")
        assert self._proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._relay_stderr(self._proc.stderr))
        try:
            raw = await asyncio.wait_for(self._call(ipc.Method.IDENTITY), START_TIMEOUT)
        except (EnclaveError, TimeoutError) as e:
            await self._last_words_of(self._proc)
            await self.stop()
            raise EnclaveStartError(self._last_words or f"no identity: {e}") from None
        self.info = raw
        return raw

    async def run(self) -> None:
        """The node's service: watch the process; restart it when it dies (the first
        start is `start()`'s, made before the node serves)."""
        backoff = RESTART_MIN
        while True:
            assert self._proc is not None
            code = await self._proc.wait()
            self._down(f"exited with {code}")
            self.log.error("enclave process died; restarting", code=code, restarts=self.restarts)
            self.on_restart()
            while True:
                await asyncio.sleep(backoff)
                try:
                    info = await self.start()
                except (EnclaveStartError, OSError) as e:
                    backoff = min(RESTART_MAX, backoff * 2)
                    self.log.error("enclave process did not start", error=str(e))
                    continue
                self.restarts += 1
                backoff = RESTART_MIN
                self.log.info("enclave process restarted", pid=info.pid, restarts=self.restarts)
                break

    async def refresh_identity(self, every: float) -> None:
        """A service: ask the running enclave for its identity again every `every` s (its
        evidence's expiry moves on as it remakes its collateral; /status shows it)."""
        while True:
            await asyncio.sleep(every)
            if self.up:
                with contextlib.suppress(EnclaveError):
                    self.info = await self._call(ipc.Method.IDENTITY)

    async def stop(self) -> None:
        proc = self._proc
        self._down("stopped")
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def _down(self, why: str) -> None:
        self.info = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None
        pending, self._pending = self._pending, {}
        for _method, fut in pending.values():
            if not fut.done():
                fut.set_exception(EnclaveUnavailable(f"the enclave process {why}"))

    async def _last_words_of(self, proc: asyncio.subprocess.Process | None) -> None:
        """A process that failed to start: wait (briefly) for it to exit and for its last
        log line to be read, which says why."""
        with contextlib.suppress(TimeoutError):
            if proc is not None:
                await asyncio.wait_for(proc.wait(), 5.0)
            if self._stderr_task is not None:
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)

    async def _relay_stderr(self, stream: asyncio.StreamReader) -> None:
        """The enclave's own log lines (one key=value line each: never plaintext or keys)
        go to our stderr; the last one is kept to say why a start failed."""
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self._last_words = text
            print(text, file=sys.stderr, flush=True)

    # -- calls ------------------------------------------------------------------------------
    async def _read_responses(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(ipc.HEADER_BYTES)
                try:
                    size = ipc.frame_length(head)
                except ipc.IpcError as e:  # the stream cannot be followed any further
                    self.log.error("enclave sent an oversized frame", error=str(e))
                    break
                body = await reader.readexactly(size)
                if self.tap is not None:
                    self.tap("from", head + body)
                self._deliver(body)
        # The socket closed (the process is exiting): no call in flight can be answered.
        # `run` notices the exit itself and restarts it.
        pending, self._pending = self._pending, {}
        for _method, fut in pending.values():
            if not fut.done():
                fut.set_exception(EnclaveUnavailable("the enclave process closed its socket"))

    def _deliver(self, body: bytes) -> None:
        try:
            request_id = ipc.response_id(body)
        except ipc.IpcError:
            request_id = -1
        entry = self._pending.pop(request_id, None)
        if entry is None:
            self.log.error("enclave answered a request we did not make", id=request_id)
            return
        method, fut = entry
        if fut.done():
            return
        try:
            _id, result = ipc.decode_response(body, method)
        except Exception as e:  # the carried EnclaveError, or a malformed answer
            fut.set_exception(e)
        else:
            fut.set_result(result)

    async def _call(self, method: ipc.Method, *args: Any) -> Any:
        writer = self._writer
        if writer is None:
            raise EnclaveUnavailable("the enclave process is not running")
        request_id = next(self._ids) & 0xFFFFFFFF
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, fut)
        frame = ipc.encode_request(request_id, method, *args)
        if self.tap is not None:
            self.tap("to", frame)
        try:
            writer.write(frame)
            await writer.drain()
        except ConnectionError:  # it died; `run` notices and restarts it
            self._pending.pop(request_id, None)
            fut.cancel()
            raise EnclaveUnavailable("the enclave process stopped") from None
        return await fut

    # -- EnclavePort ------------------------------------------------------------------------
    @property
    def identity_public_key(self) -> bytes:
        return b"" if self.info is None else self.info.identity_public_key

    @property
    def block_signing_public_key(self) -> bytes:
        return b"" if self.info is None else self.info.block_signing_public_key

    async def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        return await self._call(ipc.Method.CLIENT_HANDSHAKE, msg1)  # type: ignore[no-any-return]

    async def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        return await self._call(ipc.Method.CLIENT_TX_PROPOSE, session, ciphertext)  # type: ignore[no-any-return]

    async def peer_initiate(self, label: str) -> PeerHandshake:
        return await self._call(ipc.Method.PEER_INITIATE, label)  # type: ignore[no-any-return]

    async def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        return await self._call(  # type: ignore[no-any-return]
            ipc.Method.PEER_ACCEPT, label, message, signature, peer_message_key
        )

    async def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        return await self._call(  # type: ignore[no-any-return]
            ipc.Method.PEER_COMPLETE, label, message, signature, peer_message_key
        )

    async def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        return await self._call(ipc.Method.TXS_FOR_PEER, label, list(tx_hashes))  # type: ignore[no-any-return]

    async def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        return await self._call(ipc.Method.SEAL_FETCH, label, list(tx_hashes))  # type: ignore[no-any-return]

    async def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        return await self._call(ipc.Method.ANSWER_FETCH, label, sealed_request)  # type: ignore[no-any-return]

    async def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        return await self._call(ipc.Method.PEER_TX_PROPOSE, label, ciphertext)  # type: ignore[no-any-return]

    async def form_block(
        self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int
    ) -> FormedBlock:
        return await self._call(  # type: ignore[no-any-return]
            ipc.Method.FORM_BLOCK, list(tx_hashes), parent, signed_at
        )

    async def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        return await self._call(ipc.Method.BLOCK_APPENDED, block_index, list(done))  # type: ignore[no-any-return]

    async def forget(self, tx_hashes: Sequence[bytes]) -> None:
        await self._call(ipc.Method.FORGET, list(tx_hashes))
