"""Serving a channel over HTTP (`sonix serve`), for tests and small sites.

Plain files only, as any static web server serves them: GET and HEAD, single byte ranges
(206, 416 with `Content-Range: bytes */SIZE`) so that machines resume interrupted downloads,
`ETag`/`Last-Modified` with `If-Range`, and no directory listings. Nothing hidden (the
temporary files of a release in progress) is ever served: no path with a component starting
with `.`, however encoded, and no symlink whose target is hidden or outside the directory.
Malformed requests get an error status, never a traceback; each request has a deadline
(sonix.httpguard). Requests are logged to stderr, control characters escaped.
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import stat
import urllib.parse
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from sonix.httpguard import REQUEST_TIMEOUT, GuardedHandler, GuardedServer

CONTENT_TYPES = {
    ".json": "application/json",
    ".chunks": "application/json",  # a chunk index (docs/updates.md, "Delta updates")
    ".gpg": "application/pgp-signature",
    ".txt": "text/plain; charset=utf-8",
}
PLAIN_TEXT = {"SHA256SUMS"}
# One range of RFC 9110 §14.1.2 (the unit is case-insensitive); anything else is ignored.
RANGE_PATTERN = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*",
                           re.IGNORECASE)


class Unsatisfiable(Exception):
    pass


def bounded_number(digits: str, ceiling: int) -> int:
    """min(int(digits), ceiling) without converting thousands of digits: Python refuses to
    (ValueError past 4300 digits), and a range that large only means "past the end"."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(ceiling)):
        return ceiling
    return min(int(significant or "0"), ceiling)


def digits_less(a: str, b: str) -> bool:
    """int(a) < int(b) for decimal strings of any length."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a `Range: bytes=…` header for a file of `size` bytes, or None when the
    header is to be ignored (malformed, or several ranges: RFC 9110 lets a server answer
    those with the whole file). Raises Unsatisfiable for a range past the end; numbers of
    any length are read (RFC 9110 §14.1.1 sets no limit), a huge first position is past the
    end like any other."""
    match = re.fullmatch(RANGE_PATTERN, header)
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        start = bounded_number(match[1], size)
        end = bounded_number(match[2], size) if match[2] else size
        if match[2] and digits_less(match[2], match[1]):
            return None  # last < first: invalid, so ignored (RFC 9110 §14.1.1)
        if start >= size:
            raise Unsatisfiable
        return start, min(end + 1, size) if match[2] else size
    suffix = bounded_number(match[2], size)
    if suffix == 0 or size == 0:
        raise Unsatisfiable
    return size - suffix, size


def request_parts(target: str) -> list[str] | None:
    """The path components of a request target, percent-decoded, or None for a target that
    names no file: a hidden component (`.x`, `..`, `%2e…`) anywhere, NUL, a backslash, or
    not a path. Decoded to bytes first, then as the file system does, so a name is matched
    byte for byte whatever its encoding."""
    if target.startswith(("http://", "https://")):  # absolute form (RFC 9112 §3.2.2)
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    if not target.startswith("/"):
        return None
    raw = target.split("#", 1)[0].split("?", 1)[0]
    decoded = urllib.parse.unquote_to_bytes(raw.encode("latin-1", "replace"))
    if decoded.endswith(b"/"):
        return None  # a directory, or a file named as one
    parts = [part for part in decoded.split(b"/") if part]
    if not parts or any(part.startswith(b".") or b"\0" in part or b"\\" in part
                        for part in parts):
        return None
    return [os.fsdecode(part) for part in parts]


def is_visible_below(path: str, root: str) -> bool:
    """Whether a resolved path is below the resolved root with no hidden component below it
    (a symlink may point to another file of the channel, never to a hidden one)."""
    if os.path.commonpath([path, root]) != root or path == root:
        return False
    return not any(part.startswith(".") for part in os.path.relpath(path, root).split(os.sep))


def open_file(root: Path, parts: list[str]) -> BinaryIO | None:
    """The regular file that parts name below root, opened, or None. The path is resolved
    (symlinks followed) and checked before opening; then the path of what was opened is read
    back from /proc, so a link swapped in between is caught too."""
    top = os.path.realpath(root)
    real = os.path.realpath(os.path.join(top, *parts))
    if not is_visible_below(real, top):
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # no FIFO waits
    try:
        fd = os.open(real, flags)
    except OSError:
        return None
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        opened = real  # no /proc: the check before opening stands alone
    if not stat.S_ISREG(os.fstat(fd).st_mode) or opened != real:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


class ChannelHandler(GuardedHandler):
    """Serves the regular files below `root` (set by `make_server`)."""

    root: Path
    protocol_version = "HTTP/1.1"  # keep-alive: a machine fetches several files in a row
    server_version = "sonix-serve"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        parts = request_parts(self.path)
        f = open_file(self.root, parts) if parts else None
        if parts is None or f is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with f:
            info = os.fstat(f.fileno())
            size = info.st_size
            etag = f'"{info.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(info.st_mtime, usegmt=True)
            span: tuple[int, int] | None = None
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            # If-Range is compared as a string: a date must equal Last-Modified exactly
            # (RFC 9110 §13.1.5), anything else sends the whole file, never an error.
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
            self.send_header("Content-Type", content_type(Path(parts[-1])))
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
                except OSError:
                    self.close_connection = True  # the client went away mid-download


def content_type(path: Path) -> str:
    if path.name in PLAIN_TEXT:
        return "text/plain; charset=utf-8"
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


class _Server(GuardedServer):
    pass


class _Server6(GuardedServer):
    address_family = socket.AF_INET6


def handler_for(root: Path) -> type[ChannelHandler]:
    """A request handler class for the files below root (for any http.server server)."""
    return type("ChannelHandlerFor", (ChannelHandler,), {"root": root.absolute()})


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8000, *,
                request_timeout: float = REQUEST_TIMEOUT) -> ThreadingHTTPServer:
    """A threaded server for the files below root (not started: call serve_forever)."""
    server_class = _Server6 if ":" in host else _Server
    return server_class((host, port), handler_for(root), request_timeout=request_timeout)


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"
