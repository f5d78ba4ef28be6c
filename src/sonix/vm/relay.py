"""One guest connection ↔ one TCP connection to the host's loopback.

QEMU's `guestfwd=...-cmd:COMMAND` starts COMMAND for every connection the guest opens, with
the connection on stdin and stdout. A `guestfwd` to a chardev instead carries one connection
for the VM's whole life, which an HTTP client (a connection per request) cannot use. Usage:

    python3 -m sonix.vm.relay PORT        (connects to 127.0.0.1:PORT)
"""

from __future__ import annotations

import os
import select
import socket
import sys


def relay(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as host:
        guest_in, guest_out = sys.stdin.fileno(), sys.stdout.fileno()
        readers = [guest_in, host.fileno()]
        while readers:
            ready, _, _ = select.select(readers, [], [])
            if guest_in in ready:
                data = os.read(guest_in, 65536)
                if data:
                    host.sendall(data)
                else:  # the guest closed its side: pass the half-close on
                    host.shutdown(socket.SHUT_WR)
                    readers.remove(guest_in)
            if host.fileno() in ready:
                data = host.recv(65536)
                if not data:
                    return
                os.write(guest_out, data)


if __name__ == "__main__":
    relay(int(sys.argv[1]))
