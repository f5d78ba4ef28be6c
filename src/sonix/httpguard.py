"""Limits shared by sonix's small HTTP servers (`sonix serve`, `sonix fleetlock-server`).

`http.server` reads a request with blocking reads and no deadline: a client that sends half a
request and stays silent, or one byte every few seconds (slowloris), holds a thread for ever,
and a handler's unexpected exception ends in a traceback on stderr. Here:

- `GuardedHandler` gives each request one deadline (`request_timeout`, from the moment the
  server waits for it until its headers, and the body where a handler reads one, are in);
  past it the connection is closed. Writing a reply has its own per-write `write_timeout`.
- A request whose body the handler does not read closes the connection after the reply, so
  the body is never taken for the next request. HTTP/0.9 requests are refused (their answer
  would be a body without a status line), and every refusal has a status line.
- Log lines escape control characters (a request line cannot forge a log line), and an
  exception ends the connection with one log line, never a traceback.
- `GuardedServer` caps the connections served at once; past the cap a new one is closed.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sonix.agents.common import escape

REQUEST_TIMEOUT = 30.0  # seconds for a whole request (wait, request line, headers, body)
WRITE_TIMEOUT = 60.0  # seconds a client may leave one write of a reply unread
MAX_CONNECTIONS = 256  # connections (threads) served at once by a GuardedServer
MAX_LOG_LINE = 4096  # characters of one log line (a decision line with many holders fits)


class DeadlineReader:
    """The request side of a connection: reads of the socket bounded by one deadline.

    A buffered `makefile()` would let each `recv` wait the full socket timeout, so a client
    trickling one byte at a time stretches a line for ever; here every `recv` waits at most
    for what is left of the request's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle = REQUEST_TIMEOUT
        self.buffer = bytearray()
        self.deadline = math.inf

    def start(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.idle = seconds

    def stop(self, write_timeout: float) -> None:
        """The request is read: the reply's writes get their own timeout."""
        self.deadline = math.inf
        self.sock.settimeout(write_timeout)

    def _fill(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request was not complete within its deadline")
        self.sock.settimeout(min(left, self.idle))
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buffer.find(b"\n", 0, limit if limit >= 0 else len(self.buffer))
            if end >= 0:
                return self._take(end + 1)
            if 0 <= limit <= len(self.buffer):
                return self._take(limit)
            if not self._fill():
                return self._take(len(self.buffer))

    def read(self, count: int = -1) -> bytes:
        while count < 0 or len(self.buffer) < count:
            if not self._fill():
                break
        return self._take(len(self.buffer) if count < 0 else count)

    def close(self) -> None:
        self.buffer.clear()


def positive_seconds(text: str) -> float:
    """A --request-timeout value: seconds, more than 0 and at most a day."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, not {text!r}")
    return seconds


def declares_body(headers: Any) -> bool:
    """Whether a request says a body follows (any Content-Length but 0, or chunks)."""
    if headers.get("Transfer-Encoding"):
        return True
    return any(value.strip() != "0" for value in headers.get_all("Content-Length", []))


class GuardedHandler(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler with a deadline per request and no tracebacks (module doc)."""

    request_timeout = REQUEST_TIMEOUT
    write_timeout = WRITE_TIMEOUT
    # The version of a request whose line is refused: http.server's default, HTTP/0.9,
    # would send its error as a bare body without a status line.
    default_request_version = "HTTP/1.1"
    body_methods: frozenset[str] = frozenset()  # methods whose handler reads the body
    rfile: DeadlineReader  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the buffered reader of StreamRequestHandler, replaced:
        self.rfile = DeadlineReader(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client went away, or was too slow: nothing to answer
        except Exception as error:  # a bug: one line, the connection ends, the server goes on
            self.log_error("internal error: %s: %s", type(error).__name__, error)

    def handle_one_request(self) -> None:
        self.rfile.start(getattr(self.server, "request_timeout", self.request_timeout))
        super().handle_one_request()

    def parse_request(self) -> bool:
        raw: bytes = getattr(self, "raw_requestline", b"")  # set by handle_one_request
        requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        if len(requestline.split()) == 2:
            # HTTP/0.9 ("GET /path"): its answer would be a bare body, no status, no length.
            self.command, self.requestline = requestline.split()[0], requestline
            self.request_version = self.default_request_version
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served",
                            "send HTTP/1.0 or HTTP/1.1")
            return False
        if not super().parse_request():
            return False
        if self.command not in self.body_methods and declares_body(self.headers):
            self.close_connection = True  # the unread body must not become the next request
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        self.remember_command()
        super().send_error(code, message, explain)

    def remember_command(self) -> None:
        """The method of a request refused before http.server took it from the request line:
        a refused HEAD request still gets an answer without a body."""
        if not self.command:
            raw: bytes = getattr(self, "raw_requestline", b"")
            words = str(raw, "iso-8859-1").split()
            self.command = words[0] if words else ""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.rfile.stop(self.write_timeout)
        self._said_connection = False
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection":
            self._said_connection = True
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        if self.close_connection and not getattr(self, "_said_connection", True):
            self.send_header("Connection", "close")  # the client knows not to send more
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        line = escape(f"{self.address_string()} {format % args}")
        if len(line) > MAX_LOG_LINE:  # a request line of 64 KiB is not logged whole
            line = line[: MAX_LOG_LINE - 1] + "…"
        sys.stderr.write(line + "\n")


class GuardedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` connections at once
    and logs a failed connection in one line."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS
    request_timeout = REQUEST_TIMEOUT  # read by GuardedHandler

    def __init__(self, *args: Any, request_timeout: float = REQUEST_TIMEOUT, **kwargs: Any
                 ) -> None:
        self._active = threading.BoundedSemaphore(self.max_connections)
        self.request_timeout = request_timeout
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._active.acquire(blocking=False):
            self.shutdown_request(request)  # full: the client may try again later
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._active.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._active.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        sys.stderr.write(escape(f"{client_address[0]} connection failed: {error!r}") + "\n")
