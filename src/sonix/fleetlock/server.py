"""The FleetLock HTTP server, as Zincati speaks the protocol.

    POST /v1/pre-reboot     take a reboot slot (200), or refuse (409, kind "failed_lock")
    POST /v1/steady-state   release the slot if held (200 either way)
    GET  /v1/status         groups, slots and holders as JSON (for operators)

POST requests carry the header `fleet-lock-protocol: true` and the body
`{"client_params": {"id": "<machine id>", "group": "<group>"}}`. Every answer is JSON; errors are
`{"kind": "<bounded set of names>", "value": "<what is wrong, for people>"}`, which Zincati logs
(value) and counts (kind).
Protocol: https://coreos.github.io/zincati/development/fleetlock/protocol/
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from sonix.fleetlock.etcd import EtcdError, EtcdUnavailable
from sonix.fleetlock.semaphore import Contention, Decision, Semaphore, StateError

PROTOCOL_HEADER = "fleet-lock-protocol"
PRE_REBOOT = "/v1/pre-reboot"
STEADY_STATE = "/v1/steady-state"
STATUS = "/v1/status"
# The protocol's group syntax; it also keeps groups from reaching outside the etcd prefix.
GROUP_PATTERN = re.compile(r"[a-zA-Z0-9.-]+")
MAX_BODY = 64 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class ClientParams:
    """Who asks: the machine's id and its reboot group."""

    id: str
    group: str


class RequestError(Exception):
    """A request the server answers with an error: HTTP status, error kind and description."""

    def __init__(
        self, status: HTTPStatus, kind: str, value: str, *, allow: str | None = None
    ) -> None:
        super().__init__(value)
        self.status = status
        self.kind = kind
        self.value = value
        self.allow = allow  # the Allow header of a 405 reply


def bad_request(kind: str, value: str) -> RequestError:
    return RequestError(HTTPStatus.BAD_REQUEST, kind, value)


def parse_request(protocol_header: str | None, body: bytes) -> ClientParams:
    """Check a lock or unlock request: the protocol header's value and the raw body."""
    if protocol_header is None:
        raise bad_request("missing_protocol_header", f"header '{PROTOCOL_HEADER}: true' is missing")
    if protocol_header.strip().lower() != "true":
        raise bad_request(
            "missing_protocol_header",
            f"header '{PROTOCOL_HEADER}' must be 'true', not {protocol_header.strip()!r}",
        )
    try:
        data = json.loads(body)
    except ValueError as error:
        raise bad_request("invalid_body", f"body is not JSON: {error}") from None
    params = data.get("client_params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise bad_request(
            "invalid_body",
            'body must be {"client_params": {"id": "<machine id>", "group": "<group>"}}',
        )
    client_id = params.get("id")
    group = params.get("group")
    if not isinstance(client_id, str) or not client_id:
        raise bad_request(
            "invalid_client_params", "client_params.id must be a non-empty string"
        )
    if not isinstance(group, str) or not group:
        raise bad_request(
            "invalid_client_params", "client_params.group must be a non-empty string"
        )
    if not GROUP_PATTERN.fullmatch(group):
        raise bad_request(
            "invalid_client_params",
            f"client_params.group {group!r} must match ^[a-zA-Z0-9.-]+$",
        )
    return ClientParams(client_id, group)


def decision_body(decision: Decision) -> dict[str, Any]:
    if decision.granted:
        return {
            "group": decision.group,
            "id": decision.client_id,
            "result": decision.outcome.value,
            "slots": decision.slots,
            "holders": list(decision.holders),
        }
    return {
        "kind": "failed_lock",
        "value": f"all {decision.slots} reboot slot(s) of group {decision.group!r} are taken "
        f"(held by {', '.join(decision.holders) or 'nobody'})",
    }


_stderr_lock = threading.Lock()


def log_to_stderr(line: str) -> None:
    """One line on stderr, whole even when several request threads log at once."""
    with _stderr_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class FleetLockServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection, decisions made by `semaphore`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        semaphore: Semaphore,
        *,
        log: Callable[[str], None] = log_to_stderr,
    ) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.semaphore = semaphore
        self.log = log
        super().__init__(address, FleetLockHandler)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


class FleetLockHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length
    timeout = 60  # seconds a connection may stay silent before its thread lets it go
    server: FleetLockServer

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        what = {PRE_REBOOT: "pre-reboot", STEADY_STATE: "steady-state"}.get(path)
        try:
            body = self._read_body()
            if what is None:
                raise self._unknown_path(path, "POST")
            params = parse_request(self.headers.get(PROTOCOL_HEADER), body)
            semaphore = self.server.semaphore
            decide = semaphore.lock if what == "pre-reboot" else semaphore.unlock
            decision = self._ask_etcd(lambda: decide(params.group, params.id))
        except RequestError as error:
            self._fail(what or f"POST {path}", error)
            return
        holders = ", ".join(decision.holders) or "none"
        self.server.log(
            f"{what} {decision.group}/{decision.client_id} from {self.client_address[0]}: "
            f"{decision.outcome.value} ({len(decision.holders)}/{decision.slots} held: {holders})"
        )
        status = HTTPStatus.OK if decision.granted else HTTPStatus.CONFLICT
        self._reply(status, decision_body(decision))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path != STATUS:
                raise self._unknown_path(path, "GET")
            groups = self._ask_etcd(self.server.semaphore.status)
        except RequestError as error:
            self._fail(f"GET {path}", error)
            return
        semaphore = self.server.semaphore
        self._reply(HTTPStatus.OK, {
            "prefix": semaphore.prefix,
            "default_slots": semaphore.config.default_slots,
            "groups": {
                name: {"slots": state.slots, "holders": list(state.holders)}
                for name, state in groups.items()
            },
        })  # fmt: skip

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "invalid_body",
                "chunked bodies are not supported: send Content-Length",
            )  # fmt: skip
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise bad_request(
                "invalid_body", f"Content-Length {length_header!r} is not a number"
            ) from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "invalid_body",
                f"body of {length} bytes is larger than {MAX_BODY} bytes",
            )  # fmt: skip
        return self.rfile.read(length)

    def _unknown_path(self, path: str, method: str) -> RequestError:
        if path in (PRE_REBOOT, STEADY_STATE, STATUS):
            allowed = "GET" if path == STATUS else "POST"
            return RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed",
                f"{method} is not allowed on {path}, only {allowed}", allow=allowed,
            )  # fmt: skip
        return RequestError(
            HTTPStatus.NOT_FOUND, "not_found",
            f"no endpoint {path}: use POST {PRE_REBOOT}, POST {STEADY_STATE} or GET {STATUS}",
        )  # fmt: skip

    def _ask_etcd(self, call: Callable[[], T]) -> T:
        """Run a semaphore call; etcd and state failures become error replies."""
        try:
            return call()
        except EtcdUnavailable as error:
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE, "etcd_unavailable", f"etcd unreachable: {error}"
            ) from None
        except Contention as error:
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE, "lock_contention", str(error)
            ) from None
        except (EtcdError, StateError) as error:
            raise RequestError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "etcd_error", str(error)
            ) from None
        except Exception as error:  # a bug: answer (Zincati retries) and log it, keep serving
            raise RequestError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error",
                f"{type(error).__name__}: {error}",
            ) from error  # fmt: skip

    def _fail(self, what: str, error: RequestError) -> None:
        self.server.log(
            f"{what} from {self.client_address[0]}: {error.status.value} {error.kind}: "
            f"{error.value}"
        )
        headers = {"Allow": error.allow} if error.allow else {}
        self._reply(error.status, {"kind": error.kind, "value": error.value}, headers)

    def _reply(
        self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body, indent=None).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: decisions are logged instead of every request."""
