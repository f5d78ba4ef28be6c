"""VM-to-VM networks without any real network: an Ethernet hub on a unix socket.

Each VM's NIC is a QEMU `-netdev stream` client of the hub's socket; QEMU frames every
Ethernet frame with a 4-byte big-endian length, and the hub repeats each frame to every other
connected VM (like a hub, not a switch: the networks in tests are tiny). No vde_switch and no
host interface are needed, and nothing leaves the host's loopback world: unix sockets only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from sonix import ui
from sonix.vm.console import listen_unix


class Hub:
    """A running hub: `Hub(path).start()`, QEMU NICs connect to `path`, `close()` ends it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def start(self) -> Hub:
        self._server = listen_unix(self.path, backlog=16)
        self._spawn(self._accept_loop, f"hub-accept:{self.path.name}")
        return self

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
            self._spawn(self._forward_loop, f"hub-port:{self.path.name}", client)

    def _forward_loop(self, client: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(client, 4)
                if header is None:
                    return
                (length,) = struct.unpack("!I", header)
                frame = _recv_exact(client, length)
                if frame is None:
                    return
                self._repeat(client, header + frame)
        except OSError:
            return
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()

    def _repeat(self, sender: socket.socket, data: bytes) -> None:
        with self._lock:
            others = [c for c in self._clients if c is not sender]
        for other in others:
            try:
                other.sendall(data)
            except OSError as error:
                ui.debug(f"hub {self.path.name}: dropping a port ({error})")

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
