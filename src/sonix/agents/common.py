"""What every on-machine agent shares (standard library only): the log line, the durable write,
the bounded HTTP download and the command runner.

The agents run as root, early in the boot, on input that the network or a local user may
control. So each primitive here is bounded or durable by construction:
- a log line cannot be forged: control characters in a message are escaped, so a value read
  from the network cannot start a new journal line;
- a write is atomic and durable: a temporary file in the same directory, fsync, rename over
  the old one, fsync of the directory; a failure leaves the old file and no temporary one;
- a download has a byte cap (checked while reading, never after), one deadline for the whole
  transfer (a server that trickles a byte a second is cut off at it), refuses redirects from
  https to http and never goes through a proxy;
- a command has a timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# ---- the log line ------------------------------------------------------------------------

# systemd's priorities, as the kernel's printk prefix that journald reads from stderr.
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6


def escape(text: str) -> str:
    """`text` with control characters shown as escapes: one message stays one log line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class Logger:
    """`<priority>tag: message` on stderr, the one format of every agent's journal lines.
    Host commands that run an agent's code for a person set `Logger.journal = False` and get
    the lines without the priority prefix."""

    journal = True

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(self, message: str, priority: int = INFO) -> None:
        lines = [escape(line) for line in message.split("\n")] or [""]
        prefix = f"<{priority}>" if Logger.journal else ""
        for line in lines:  # a multi-line message (gpgv's output) keeps its tag on each line
            print(f"{prefix}{self.tag}: {line}", file=sys.stderr, flush=True)


# ---- atomic and durable writes -----------------------------------------------------------


def fsync_directory(directory: Path | int) -> None:
    """Make a rename or an unlink in `directory` (a path or an open descriptor) durable."""
    if isinstance(directory, int):
        os.fsync(directory)
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic_at(dir_fd: int, name: str, data: bytes, mode: int = 0o644,
                    uid: int | None = None, gid: int | None = None) -> None:
    """Replace `name` in the directory open as `dir_fd` with `data`, atomically and durably.
    The temporary file is created with O_EXCL | O_NOFOLLOW (a planted link is never written
    through), owner and mode are set on its descriptor before it takes the name, and it is
    removed again if anything fails."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a file name: {name!r}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, uid: int | None = None,
                 gid: int | None = None) -> None:
    """write_atomic_at for a path whose directory exists and is trusted (the agent's own state
    directory, /run): a power cut leaves the old file or the new one, never a mix or a
    stray temporary file."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write_atomic_at(dir_fd, path.name, data, mode, uid, gid)
    finally:
        os.close(dir_fd)


# ---- bounded downloads -------------------------------------------------------------------

CHUNK = 1 << 16
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A download failed; the message names the URL and why."""


class HTTPStatusError(FetchError):
    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())
        self.status = status


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock after which a transfer is cut off."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @staticmethod
    def after(seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return Deadline(clock() + seconds, clock)

    def left(self) -> float:
        return self.at - self.clock()


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of any status, its header names in lower case."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str  # after redirects


class TLSError(FetchError):
    """The server's certificate does not verify (retrying will not help)."""


class TooLarge(FetchError):
    """The answer is larger than the caller's limit."""


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise FetchError(f"{url}: not a valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: only http:// and https:// URLs can be downloaded")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":  # the default context verifies the certificate and the name
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return connection, target


def _cut_off(connection: http.client.HTTPConnection) -> None:
    """Shut the connection's socket down: a recv blocked in another thread returns at once.
    This is what bounds a server that trickles its headers or body a byte at a time (a
    socket timeout only bounds each single recv)."""
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def http_request(method: str, url: str, *, max_bytes: int, deadline: Deadline,
                 headers: Mapping[str, str] | None = None, follow_redirects: bool = True,
                 response_timeout: float | None = None, out: BinaryIO | None = None,
                 body: bytes | None = None) -> Answer:
    """One HTTP request, never through a proxy, all of it (connecting, headers, body,
    redirects) within `deadline`. Any status is an Answer (a redirect too, unless
    `follow_redirects`; redirects from https to http are refused). The body goes to `out`
    when given (Answer.body is then b""). Raises FetchError: no answer, a cut-off or truncated
    body, TooLarge past `max_bytes` (checked while reading), TLSError."""
    for _ in range(MAX_REDIRECTS + 1):
        left = deadline.left()
        if left <= 0:
            raise FetchError(f"{url}: no time left to ask")
        wait = min(left, response_timeout) if response_timeout else left
        connection, target = _connect(url, wait)
        timer = threading.Timer(left, _cut_off, [connection])
        timer.daemon = True
        try:
            try:
                connection.connect()
                timer.start()
                connection.request(method, target, body=body, headers=dict(headers or {}))
                response = connection.getresponse()
            except ssl.SSLCertVerificationError as error:
                raise TLSError(f"{url}: the server's TLS certificate does not verify: "
                               f"{error.verify_message}") from None
            except (OSError, http.client.HTTPException) as error:
                late = " (deadline)" if deadline.left() <= 0 else ""
                raise FetchError(f"{url}: {reason(error)}{late}") from None
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
            location = answer_headers.get("location")
            if follow_redirects and response.status in (301, 302, 303, 307, 308) and location:
                new = urllib.parse.urljoin(url, location)
                if (urllib.parse.urlsplit(url).scheme == "https"
                        and urllib.parse.urlsplit(new).scheme != "https"):
                    raise FetchError(f"{url}: refused a redirect from https to {new}")
                url = new
                continue
            if connection.sock is not None:
                connection.sock.settimeout(max(deadline.left(), 0.001))
            body = _read_body(url, response, max_bytes, deadline,
                              out if response.status == 200 else None)
            return Answer(response.status, answer_headers, body, url)
        finally:
            timer.cancel()
            connection.close()
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def http_get(url: str, *, max_bytes: int, deadline: Deadline,
             headers: Mapping[str, str] | None = None, out: BinaryIO | None = None,
             response_timeout: float | None = None) -> bytes:
    """GET `url` into memory (or into `out`, then b"" is returned). Raises FetchError when the
    body would pass `max_bytes`, when `deadline` passes before the last byte, when the body is
    shorter than its Content-Length, on a status other than 200 (HTTPStatusError), and on a
    redirect from https to http. `response_timeout` bounds the wait for the connection and
    the response headers (Ignition's httpResponseHeaders), within the deadline."""
    answer = http_request("GET", url, max_bytes=max_bytes, deadline=deadline, headers=headers,
                          response_timeout=response_timeout, out=out)
    if answer.status != 200:
        raise HTTPStatusError(answer.url, answer.status,
                              http.client.responses.get(answer.status, ""))
    return answer.body


def _read_body(url: str, response: http.client.HTTPResponse, max_bytes: int,
               deadline: Deadline, out: BinaryIO | None) -> bytes:
    length = response.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(f"{url}: {int(length)} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = response.read1(CHUNK)
        except (OSError, http.client.HTTPException) as error:
            chunk, problem = b"", reason(error)
        else:
            problem = ""
        if deadline.left() <= 0:
            raise FetchError(f"{url}: not complete within the deadline ({size} bytes so far)")
        if problem:
            raise FetchError(f"{url}: {problem} after {size} bytes")
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{url}: larger than the limit of {max_bytes} bytes")
        if out is None:
            chunks.append(chunk)
        else:
            out.write(chunk)
    if length is not None and length.isdigit() and size != int(length):
        raise FetchError(f"{url}: truncated: {size} of {int(length)} bytes")
    return b"".join(chunks)


def http_get_retrying(url: str, *, max_bytes: int, deadline: Deadline, attempts: int = 4,
                      backoff: float = 1.0, headers: Mapping[str, str] | None = None,
                      response_timeout: float | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> bytes:
    """http_get, tried again after 1, 2, 4 … seconds while the deadline allows. A 4xx answer
    other than 408 and 429 is final (asking again gets the same answer)."""
    for attempt in range(attempts):
        try:
            return http_get(url, max_bytes=max_bytes, deadline=deadline, headers=headers,
                            response_timeout=response_timeout)
        except HTTPStatusError as error:
            if 400 <= error.status < 500 and error.status not in (408, 429):
                raise
            last: FetchError = error
        except FetchError as error:
            last = error
        pause = backoff * 2 ** attempt
        if attempt + 1 == attempts or deadline.left() <= pause:
            break
        sleep(pause)
    raise last


def reason(error: BaseException) -> str:
    """`connection refused`, `timed out`, ... for a log line."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed after {len(error.partial)} bytes"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    text = str(error) or type(error).__name__
    return escape(text)


# ---- commands ----------------------------------------------------------------------------


class CommandError(Exception):
    """A command failed or ran past its timeout; the message has the command line."""


def run(argv: Sequence[str], timeout: float, input: bytes | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run argv (no shell), its output captured as text, stdin empty unless given. Raises
    CommandError when it exits non-zero or outlives `timeout` seconds."""
    command = shlex.join(argv)
    try:
        result = subprocess.run(
            list(argv), input=input.decode() if input is not None else None,
            stdin=subprocess.DEVNULL if input is None else None, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"{command}: no result after {timeout:.0f} s") from None
    except OSError as error:
        raise CommandError(f"{command}: {reason(error)}") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise CommandError(f"{command}: exit status {result.returncode}"
                           + (f": {output}" if output else ""))
    return result
