"""A small etcd v3 client over etcd's HTTP/JSON gateway (standard library only).

Just what the FleetLock server needs: read one key or all keys under a prefix, and write a key
only if it has not changed since it was read (a one-comparison transaction on `mod_revision`).
The gateway speaks the gRPC messages as JSON: keys and values are base64, 64-bit integers are
strings, and fields with their default value (0, false, empty) are left out of replies.
Reference: https://etcd.io/docs/v3.5/dev-guide/api_grpc_gateway/

Why not a client library: the three calls are a few lines of urllib each, and with the standard
library only the lock server runs with any python3 (a sonix machine's included).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class EtcdError(Exception):
    """etcd answered, but not as expected (an error reply, or one that is not JSON)."""


class EtcdUnavailable(EtcdError):
    """No etcd endpoint could be reached (refused, timed out, no leader)."""


@dataclass(frozen=True)
class KeyValue:
    """One key as read from etcd. `mod_revision` is the cluster revision of its last write."""

    key: str
    value: bytes
    mod_revision: int


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _prefix_end(prefix: str) -> bytes:
    """The `range_end` that makes a range request cover every key starting with `prefix`:
    the prefix with its last byte incremented (UTF-8 never has a byte 0xff to carry over)."""
    raw = bytearray(prefix.encode())
    if not raw:
        return b"\0"  # etcd's "every key"
    raw[-1] += 1
    return bytes(raw)


def _key_value(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(item["key"]).decode(errors="replace"),
        value=base64.b64decode(item.get("value", "")),
        mod_revision=int(item.get("mod_revision", 0)),
    )


class EtcdClient:
    """Talks to one etcd cluster through any of its client URLs (`http://host:2379`).

    Requests go to the endpoint that answered last; when it cannot be reached the next one is
    tried, so a lock server keeps working while one etcd member is down. Proxy settings from
    the environment are ignored: etcd is reached directly.
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [url.rstrip("/") for url in endpoints]
        self.timeout = timeout
        self._current = 0
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def health(self) -> None:
        """Raise EtcdUnavailable unless an endpoint reports itself healthy (it has a leader)."""
        reply = self._request("/health", None)
        if reply.get("health") != "true":
            raise EtcdUnavailable(f"etcd reports itself unhealthy: {json.dumps(reply)}")

    def get(self, key: str) -> KeyValue | None:
        """The key, or None when it does not exist."""
        reply = self._request("/v3/kv/range", {"key": _b64(key)})
        kvs = reply.get("kvs", [])
        return _key_value(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        """Every key that starts with `prefix`, sorted by key."""
        reply = self._request(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        return sorted((_key_value(item) for item in reply.get("kvs", [])), key=lambda kv: kv.key)

    def put_if_unchanged(self, key: str, value: bytes, mod_revision: int) -> bool:
        """Write `value` only if the key's mod_revision is still `mod_revision` (0: only if the
        key does not exist). False when another writer came first: read again and retry."""
        reply = self._request("/v3/kv/txn", {
            "compare": [{
                "key": _b64(key), "result": "EQUAL", "target": "MOD",
                "mod_revision": str(mod_revision),
            }],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
        })
        return bool(reply.get("succeeded", False))

    def _request(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:
            start = self._current
        failures: list[str] = []
        for offset in range(len(self.endpoints)):
            index = (start + offset) % len(self.endpoints)
            url = self.endpoints[index] + path
            try:
                reply = self._send(url, body)
            except EtcdUnavailable as error:
                failures.append(str(error))
                continue
            with self._lock:
                self._current = index
            return reply
        raise EtcdUnavailable("; ".join(failures))

    def _send(self, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()
            if error.code == 503:  # /health without a leader, or the member is stopping
                raise EtcdUnavailable(f"{url}: HTTP 503 {detail}") from None
            raise EtcdError(f"{url}: HTTP {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise EtcdUnavailable(f"{url}: {reason}") from None
        try:
            reply = json.loads(raw)
        except ValueError:
            raise EtcdError(f"{url}: reply is not JSON: {raw[:200]!r}") from None
        if not isinstance(reply, dict):
            raise EtcdError(f"{url}: reply is not a JSON object: {raw[:200]!r}")
        return reply
