"""Serving a channel over HTTP (`sonix serve`), for tests and small sites.

Plain files only, as any static web server serves them: GET and HEAD, single byte ranges
(206, 416 with `Content-Range: bytes */SIZE`) so that machines resume interrupted downloads,
`ETag`/`Last-Modified` with `If-Range`, and no directory listings. Hidden files (the temporary
files of a release in progress) are never served. Requests are logged to stderr.
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import sys
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPES = {
    ".json": "application/json",
    ".gpg": "application/pgp-signature",
    ".txt": "text/plain; charset=utf-8",
}
PLAIN_TEXT = {"SHA256SUMS"}


class Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a `Range: bytes=…` header for a file of `size` bytes, or None when the
    header is to be ignored (malformed, or several ranges: RFC 9110 lets a server answer
    those with the whole file). Raises Unsatisfiable for a range past the end."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        if match[2] and int(match[2]) < start:
            return None
        if start >= size:
            raise Unsatisfiable
        return start, min(int(match[2]) + 1, size) if match[2] else size
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise Unsatisfiable
    return max(0, size - suffix), size


class ChannelHandler(BaseHTTPRequestHandler):
    """Serves the regular files below `root` (set by `make_server`)."""

    root: Path
    protocol_version = "HTTP/1.1"  # keep-alive: a machine fetches several files in a row
    server_version = "sonix-serve"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _file(self) -> Path | None:
        """The requested file, or None: no directories, no hidden files, nothing outside."""
        raw = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = [part for part in raw.split("/") if part]
        if not parts or any(p.startswith(".") or "\0" in p or "\\" in p for p in parts):
            return None
        path = self.root.joinpath(*parts)
        if not path.is_file() or not path.resolve().is_relative_to(self.root.resolve()):
            return None
        return path

    def _serve(self, body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            f = path.open("rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with f:
            stat = os.fstat(f.fileno())
            size = stat.st_size
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            span: tuple[int, int] | None = None
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if range_header and (if_range is None or if_range.strip() in (etag, modified)):
                try:
                    span = parse_range(range_header, size)
                except Unsatisfiable:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            start, end = span or (0, size)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if body and end > start:
                try:
                    self.connection.sendfile(f, start, end - start)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away mid-download

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def content_type(path: Path) -> str:
    if path.name in PLAIN_TEXT:
        return "text/plain; charset=utf-8"
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def handler_for(root: Path) -> type[ChannelHandler]:
    """A request handler class for the files below root (for any http.server server)."""
    return type("ChannelHandlerFor", (ChannelHandler,), {"root": root.absolute()})


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A threaded server for the files below root (not started: call serve_forever)."""
    server_class = _Server6 if ":" in host else ThreadingHTTPServer
    return server_class((host, port), handler_for(root))


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"
