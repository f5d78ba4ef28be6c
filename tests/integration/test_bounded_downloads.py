"""The agents' one HTTP client (src/sonix/agents/common.py) against hostile servers on
127.0.0.1: servers that trickle their headers or body a byte at a time, stay silent, close
early, send more than the cap or claim to, redirect forever, redirect from https to http.
Each case says what must happen and how long it may take: every download keeps to its byte
cap and its one deadline. The same for what is built on it: metadata discovery
(`discover(timeout=3)` must return within its deadline) and provisioning's remote files."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sonix.agents import common, metadata, provision

SLACK = 1.5  # seconds a cut-off may take beyond its deadline (thread start, a last recv)


class HostileServer:
    """A raw TCP server on 127.0.0.1 that answers each request by its path."""

    def __init__(self, wrap: object = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.wrap = wrap  # an ssl.SSLContext for https
        self.stop = threading.Event()
        self.hits: dict[str, int] = {}
        self.default: Callable[[socket.socket], None] | None = None  # for any other path
        threading.Thread(target=self.serve, daemon=True).start()

    def url(self, path: str) -> str:
        scheme = "https" if self.wrap is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        try:
            if self.wrap is not None:
                conn = self.wrap.wrap_socket(conn, server_side=True)  # type: ignore[attr-defined]
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            path = request.split(b" ")[1].decode()
            self.hits[path] = self.hits.get(path, 0) + 1
            name = "do_" + path.strip("/").replace("-", "_").split("?")[0]
            behaviour = getattr(self, name, None) or self.default
            if behaviour is not None:
                behaviour(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        for byte in data:
            if self.stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    # ---- the behaviours

    def do_ok(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    def do_trickle_body(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        self.trickle(conn, b"x" * 1000)

    def do_trickle_headers(self, conn: socket.socket) -> None:
        self.trickle(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 500 + b"\r\n\r\n")

    def do_silent(self, conn: socket.socket) -> None:
        self.stop.wait(30)

    def do_truncated(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")

    def do_endless(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        while not self.stop.is_set():
            conn.sendall(b"z" * 65536)

    def do_claims_huge(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\nabc")

    def do_loop(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")

    def do_to_http(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/ok\r\n"
                     b"Content-Length: 0\r\n\r\n")

    def do_missing(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def do_flaky(self, conn: socket.socket) -> None:
        if self.hits["/flaky"] < 3:
            conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
        else:
            self.do_ok(conn)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


@dataclass(frozen=True)
class Case:
    path: str
    error: str | None  # a regex of the FetchError's message; None: success
    kind: type[Exception] = common.FetchError


CASES = [
    Case("/ok", None),
    Case("/trickle-body", r"not complete within the deadline"),
    Case("/trickle-headers", r"deadline"),
    Case("/silent", r"timed out|deadline"),
    Case("/truncated", r"truncated: 10 of 100 bytes|after 10 bytes"),
    Case("/endless", r"larger than the limit of 1048576 bytes", common.TooLarge),
    Case("/claims-huge", r"1000000000 bytes, more than the limit", common.TooLarge),
    Case("/loop", r"more than 5 redirects"),
    Case("/missing", r"HTTP 404", common.HTTPStatusError),
]


@pytest.mark.parametrize("case", CASES, ids=[c.path for c in CASES])
def test_every_download_keeps_to_its_cap_and_its_deadline(
        hostile: HostileServer, case: Case) -> None:
    deadline = 2.0
    started = time.monotonic()
    if case.error is None:
        assert common.http_get(hostile.url(case.path), max_bytes=1 << 20,
                               deadline=common.Deadline.after(deadline)) == b"hello"
    else:
        with pytest.raises(case.kind, match=case.error):
            common.http_get(hostile.url(case.path), max_bytes=1 << 20,
                            deadline=common.Deadline.after(deadline))
    assert time.monotonic() - started < deadline + SLACK


def test_retries_back_off_and_a_final_answer_is_not_retried(hostile: HostileServer) -> None:
    pauses: list[float] = []
    body = common.http_get_retrying(hostile.url("/flaky"), max_bytes=100,
                                    deadline=common.Deadline.after(30), sleep=pauses.append)
    assert body == b"hello" and pauses == [1.0, 2.0]
    with pytest.raises(common.HTTPStatusError):
        common.http_get_retrying(hostile.url("/missing"), max_bytes=100,
                                 deadline=common.Deadline.after(30), sleep=pauses.append)
    assert hostile.hits["/missing"] == 1


def test_the_response_timeout_bounds_the_wait_for_headers(hostile: HostileServer) -> None:
    started = time.monotonic()
    with pytest.raises(common.FetchError):
        common.http_get(hostile.url("/silent"), max_bytes=100,
                        deadline=common.Deadline.after(20), response_timeout=1)
    assert time.monotonic() - started < 1 + SLACK


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """An https server with a certificate for 127.0.0.1 that the client trusts (through
    SSL_CERT_FILE, as a machine's CA bundle would)."""
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")  # it is on every Debian host with Python
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HostileServer(wrap=context)
    yield server
    server.close()


def test_https_is_verified_and_never_redirected_to_http(tls: HostileServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    deadline = common.Deadline.after(10)
    assert common.http_get(tls.url("/ok"), max_bytes=100, deadline=deadline) == b"hello"
    with pytest.raises(common.FetchError, match=r"refused a redirect from https to http://"):
        common.http_get(tls.url("/to-http"), max_bytes=100, deadline=deadline)
    monkeypatch.delenv("SSL_CERT_FILE")  # now the certificate is nobody's
    with pytest.raises(common.TLSError, match="does not verify"):
        common.http_get(tls.url("/ok"), max_bytes=100, deadline=deadline)


def test_metadata_discovery_keeps_to_its_deadline(tmp_path: Path,
                                                  hostile: HostileServer) -> None:
    """EC2's address answers, but a byte at a time: discovery must give up at its deadline
    (it took 33 s for timeout=3 when each read had its own timeout)."""
    (tmp_path / "cmdline").write_text("console=ttyS0\n")
    env = metadata.Environment(
        cmdline=tmp_path / "cmdline", net=tmp_path / "net", credentials_dir=tmp_path / "c",
        disk_by_label=tmp_path / "l", runtime_dir=tmp_path / "run",
        ec2_url=hostile.url("/trickle-body").removesuffix("/trickle-body"),
        network_wait=0,
    )
    hostile.default = hostile.do_trickle_body  # every EC2 request trickles
    started = time.monotonic()
    # An address that never completes an answer is "not here", or broken once it did.
    with contextlib.suppress(metadata.SourceError):
        assert metadata.discover(env, ["ec2"], timeout=3) is None
    assert time.monotonic() - started < 3 + 2 * SLACK


def test_provisioning_stops_a_trickling_remote_file_at_its_deadline(
        tmp_path: Path, hostile: HostileServer) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    before = sorted(p.name for p in (root / "etc").iterdir())
    config = (b'{"ignition": {"version": "3.4.0", "timeouts": {"httpTotal": 2}}, "storage": '
              b'{"files": [{"path": "/etc/app", "contents": {"source": "'
              + hostile.url("/trickle-body").encode() + b'", "verification": {"hash": '
              b'"sha256-' + b"0" * 64 + b'"}}}]}}')
    settings = provision.Settings(sources=("credentials",), every_boot=frozenset(),
                                  timeout=30, on_error="emergency", user="admin",
                                  matchbox_url=None)
    started = time.monotonic()
    with pytest.raises(provision.ProvisionError,
                       match=r"\$\.storage\.files\.0\.contents: cannot fetch .*deadline"):
        provision.make_plan(metadata.Found("credentials", config), settings)
    # httpTotal bounds each try and all the tries together.
    assert time.monotonic() - started < 2 + SLACK
    assert sorted(p.name for p in (root / "etc").iterdir()) == before
