"""A small synchronous QMP client (QEMU's JSON monitor) on a unix socket."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class QmpError(Exception):
    """QEMU refused a command or the monitor is not reachable."""


class Qmp:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._file: Any = None
        self.events: list[dict[str, Any]] = []  # asynchronous events seen so far

    def connect(self, timeout: float = 30.0, alive: Callable[[], bool] | None = None) -> None:
        """Connect (QEMU creates the socket shortly after it starts) and negotiate.

        `alive` says whether QEMU still runs: once it does not, waiting is pointless."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
                break
            except OSError as error:
                sock.close()
                if time.monotonic() >= deadline or (alive is not None and not alive()):
                    raise QmpError(f"cannot connect to QMP at {self.path}: {error}") from None
                time.sleep(0.1)
        sock.settimeout(timeout)
        self._sock = sock
        self._file = sock.makefile("rwb")
        self._read_message()  # greeting
        self.command("qmp_capabilities")

    def _read_message(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise QmpError("QMP connection closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def command(self, name: str, **arguments: Any) -> Any:
        """Run a QMP command and return its `return` value."""
        if self._file is None:
            raise QmpError("QMP is not connected")
        request: dict[str, Any] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        while True:
            message = self._read_message()
            if "event" in message:
                self.events.append(message)
                continue
            if "error" in message:
                raise QmpError(f"{name}: {message['error'].get('desc', message['error'])}")
            return message.get("return")

    def drain_events(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Every event, after reading what QEMU sent before it exited (call it then only:
        while QEMU runs this waits `timeout` s for more)."""
        if self._file is None or self._sock is None:
            return self.events
        self._sock.settimeout(timeout)
        try:
            while True:
                self.events.append(self._read_message())
        except (QmpError, OSError, ValueError):
            pass  # the end of the stream (or of what can be read)
        return self.events

    def guest_reset(self) -> bool:
        """Whether QEMU (now ended) stopped because the guest reset: a reboot, or the
        watchdog firing, which under -no-reboot ends QEMU with the same SHUTDOWN reason."""
        return self.watchdog_reset() or any(
            (event.get("event"), event.get("data", {}).get("reason"))
            == ("SHUTDOWN", "guest-reset")
            for event in self.drain_events()
        )

    def watchdog_reset(self) -> bool:
        """Whether the guest's hardware watchdog fired and reset it (QEMU now ended)."""
        return any(
            (event.get("event"), event.get("data", {}).get("action")) == ("WATCHDOG", "reset")
            for event in self.drain_events()
        )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._file = None
