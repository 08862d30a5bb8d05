"""A real static web server for tests, serving a directory as it is on 127.0.0.1.

nginx (Debian's package) when it is installed, else Python's `http.server` in a thread;
`server_kind()` says which, so tests can name it in their ids. nginx runs as a child in
the foreground (`daemon off`, one process) with a generated config: no listing
(`autoindex off`), no compression, files served as they are. MCNODE_TEST_WEBSERVER=
http.server picks the fallback even where nginx is installed (to check it).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
)
if os.environ.get("MCNODE_TEST_WEBSERVER") == "http.server":
    NGINX = None


def server_kind() -> str:
    return "nginx" if NGINX else "http.server"


@dataclass(frozen=True)
class StaticServer:
    kind: str  # "nginx" or "http.server"
    url: str  # http://127.0.0.1:PORT/ : the served directory's root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    default_type application/octet-stream;
    gzip off;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        root {root};
        autoindex off;
    }}
}}
"""


@contextlib.contextmanager
def _nginx(root: Path, work: Path, tls: tuple[Path, Path] | None) -> Iterator[StaticServer]:
    assert NGINX is not None
    work.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):  # the free port may be taken between probe and bind
        port = _free_port()
        conf = work / "nginx.conf"
        ssl, directives = "", ""
        if tls is not None:
            ssl = " ssl"
            directives = f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};"
        conf.write_text(NGINX_CONF.format(work=work, port=port, root=root, ssl=ssl, tls=directives))
        log = open(work / "stderr.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)],
            stdout=log,
            stderr=log,
        )
        try:
            _wait_listening(port, proc, 10.0)
        except RuntimeError:
            proc.kill()
            proc.wait()
            log.close()
            if attempt == 4:
                raise RuntimeError(
                    "nginx did not start: " + (work / "error.log").read_text()[-500:]
                ) from None
            continue
        try:
            scheme = "http" if tls is None else "https"
            yield StaticServer("nginx", f"{scheme}://127.0.0.1:{port}/")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        return


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def list_directory(self, path: str):  # type: ignore[no-untyped-def]
        self.send_error(404, "no listing")  # as `autoindex off`
        return None


@contextlib.contextmanager
def _http_server(root: Path, tls: tuple[Path, Path] | None) -> Iterator[StaticServer]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="http.server", daemon=True)
    thread.start()
    try:
        scheme = "http" if tls is None else "https"
        yield StaticServer("http.server", f"{scheme}://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def serve(root: Path, work: Path, tls: tuple[Path, Path] | None = None) -> Iterator[StaticServer]:
    """Serve `root` (the URL's '/') until the block ends; `work` holds nginx's files.
    With `tls` (certificate, key: PEM files), over HTTPS."""
    if NGINX:
        with _nginx(root.resolve(), work, tls) as s:
            yield s
    else:
        with _http_server(root, tls) as s:
            yield s
