"""What VM tests ask of a guest from the host, through QEMU's port forwards on 127.0.0.1."""

from __future__ import annotations

import http.client


def http_get(port: int, path: str = "/", timeout: float = 30) -> tuple[int, str]:
    """(status, body) of GET `path` on the host's forwarded `port`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
