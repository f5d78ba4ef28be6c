"""The host end of a QEMU character device: a unix socket that QEMU connects to.

The host listens before QEMU starts and QEMU connects as a client (`server=off`), so no byte
the guest writes early is lost and nothing races the guest's boot. A reader thread keeps
everything that arrives; waiters block on a condition variable (event-driven, no polling).
The same socket survives guest reboots (same QEMU process); a new QEMU process connects anew.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def listen_unix(path: Path, backlog: int) -> socket.socket:
    """A unix stream socket listening at `path` (a stale socket file there is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(backlog)
    return server

class ChannelClosed(Exception):
    """QEMU went away (or never connected) while someone waited for data."""


class Channel:
    """A listening unix socket for one QEMU chardev and the bytes received on it."""

    def __init__(
        self, path: Path, echo: TextIO | None = None, *, keep_history: bool = True
    ) -> None:
        self.path = path
        self.echo = echo
        # A console keeps everything (waits search it); a protocol channel drops what
        # `read_line` consumed, so large replies do not pile up.
        self.keep_history = keep_history
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._data = ""  # positions below are in characters of this text
        self._offset = 0  # start of unconsumed text, for `read_line`
        self._last_data = time.monotonic()  # when text last arrived (or the channel was made)
        self._generation = 0  # bumped on every new connection
        self._connected = False
        self._cond = threading.Condition()
        self._closing = False

    # -- life cycle --------------------------------------------------------------------------

    def listen(self) -> None:
        self._server = listen_unix(self.path, backlog=1)
        threading.Thread(target=self._serve, name=f"chan:{self.path.name}", daemon=True).start()

    def _serve(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._cond:
                self._conn = conn
                self._connected = True
                self._generation += 1
                self._cond.notify_all()
            self._read(conn)
            with self._cond:
                self._connected = False
                self._conn = None
                self._cond.notify_all()
            conn.close()

    def _read(self, conn: socket.socket) -> None:
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            text = self._decoder.decode(chunk)
            if self.echo is not None:
                self.echo.write(text)
                self.echo.flush()
            with self._cond:
                self._data += text
                self._last_data = time.monotonic()
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            conn = self._conn
            self._cond.notify_all()
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- reading -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def text(self) -> str:
        """Everything received so far (what is left of it without `keep_history`)."""
        with self._cond:
            return self._data

    def quiet_for(self) -> float:
        """Seconds since text last arrived (since the channel was made, before any)."""
        with self._cond:
            return time.monotonic() - self._last_data

    def mark(self) -> int:
        """The current end of the received text (to wait for text that comes after it)."""
        with self._cond:
            return len(self._data)

    def skip_to_end(self) -> None:
        """Forget unconsumed data for `read_line` (e.g. a half reply of a killed shell)."""
        with self._cond:
            self._offset = len(self._data)
            if not self.keep_history:
                self._data = ""
                self._offset = 0

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        timeout: float,
        *,
        start: int = 0,
        alive: Callable[[], bool] | None = None,
        settle: float = 0.5,
    ) -> re.Match[str] | None:
        """The first match of `pattern` in the text from `start` on, waiting up to `timeout`.

        A match that reaches the end of the text so far might still grow (`MARKER-\\d+` while
        only `MARKER-4` of `MARKER-42` has arrived), so it counts only once the output has
        been quiet for `settle` seconds; a prompt without a newline still matches that way.
        Returns None on timeout. `alive` is asked between wake-ups; when it says False (QEMU
        exited), the wait ends early with ChannelClosed.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = regex.search(self._data, start)
                quiet_for = time.monotonic() - self._last_data
                if found and (found.end() < len(self._data) or quiet_for >= settle):
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found  # at the deadline, a match at the end counts as it is
                if self._closing or (alive is not None and not alive()):
                    if found:
                        return found
                    raise ChannelClosed(f"{self.path.name}: QEMU is not running")
                if found:
                    remaining = min(remaining, settle - quiet_for)
                self._cond.wait(min(max(remaining, 0.01), 1.0))

    def read_line(self, timeout: float, alive: Callable[[], bool] | None = None) -> str | None:
        """The next unconsumed line (without the newline), or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                end = self._data.find("\n", self._offset)
                if end >= 0:
                    line = self._data[self._offset : end]
                    self._offset = end + 1
                    if not self.keep_history:
                        self._data = self._data[self._offset :]
                        self._offset = 0
                    return line.rstrip("\r")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self._closing or (alive is not None and not alive()):
                    raise ChannelClosed(f"{self.path.name}: QEMU is not running")
                self._cond.wait(min(remaining, 1.0))

    def wait_connected(self, timeout: float, alive: Callable[[], bool] | None = None) -> bool:
        """Whether QEMU connected within `timeout`: also when it has closed the connection
        again since (a guest that reset at once ends QEMU under -no-reboot)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._connected and self._generation == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing or (alive is not None and not alive()):
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def send(self, data: bytes) -> None:
        with self._cond:
            conn = self._conn
        if conn is None:
            raise ChannelClosed(f"{self.path.name}: QEMU is not connected")
        conn.sendall(data)
