"""sonix.httpguard: the request deadline, the reader http.server reads requests with, the
connection cap, and the --request-timeout values."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from sonix.httpguard import DeadlineReader, GuardedHandler, GuardedServer, positive_seconds


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_reader_lines_limits_and_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    reader = DeadlineReader(server)
    reader.start(5)
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody-bytes")
    assert reader.readline(65537) == b"GET / HTTP/1.1\r\n"
    assert reader.readline(4) == b"Host"  # the limit, as file objects have it
    assert reader.readline() == b": x\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.read(4) == b"body"
    client.shutdown(socket.SHUT_WR)
    assert reader.read(100) == b"-bytes"  # EOF: what there is
    assert reader.readline() == b""


def test_reader_deadline_holds_against_a_trickle(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """One byte every 0.1 s never completes a line: the deadline ends the read, though no
    single wait is longer than the socket timeout."""
    client, server = pair
    reader = DeadlineReader(server)
    started = time.monotonic()
    reader.start(0.5)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.1):
            try:
                client.sendall(b"a")
            except OSError:
                return

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        with pytest.raises(TimeoutError):
            reader.readline(65537)
    finally:
        stop.set()
        thread.join()
    assert 0.5 <= time.monotonic() - started < 2


def test_reader_stop_gives_writes_their_own_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, server = pair
    reader = DeadlineReader(server)
    reader.start(0.01)
    reader.stop(60)
    assert server.gettimeout() == 60


class Slow(GuardedHandler):
    def do_GET(self) -> None:
        time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Capped(GuardedServer):
    max_connections = 2


def test_connection_cap() -> None:
    """Past the cap a new connection is closed at once; served ones finish normally."""
    server = Capped(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as third:
            assert third.recv(100) == b""  # closed without an answer
        for sock in held:
            assert sock.recv(100).startswith(b"HTTP/1.0 200")
            sock.close()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as again:
            again.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert again.recv(100).startswith(b"HTTP/1.0 200")  # the slots came back
    finally:
        server.shutdown()
        server.server_close()


def test_guarded_handler_is_a_base_handler() -> None:
    assert issubclass(GuardedHandler, BaseHTTPRequestHandler)
    assert GuardedHandler.default_request_version == "HTTP/1.1"


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "x", "", "86401", "1e400"])
def test_request_timeout_values(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="seconds between 0 and 86400"):
        positive_seconds(text)


def test_request_timeout_good_values() -> None:
    assert positive_seconds("2.5") == 2.5
    assert positive_seconds("86400") == 86400
