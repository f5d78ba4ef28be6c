"""The FleetLock HTTP server, as Zincati speaks the protocol.

    POST /v1/pre-reboot     take a reboot slot (200), or refuse (409, kind "failed_lock")
    POST /v1/steady-state   release the slot if held (200 either way)
    GET  /v1/status         groups, slots and holders as JSON (for operators)

POST requests carry the header `fleet-lock-protocol: true` and the body
`{"client_params": {"id": "<machine id>", "group": "<group>"}}`. Every answer is JSON; errors are
`{"kind": "<bounded set of names>", "value": "<what is wrong, for people>"}`, which Zincati logs
(value) and counts (kind).
Protocol: https://coreos.github.io/zincati/development/fleetlock/protocol/

Hostile requests get the same kind of answer: a body is read only with a valid Content-Length
of at most MAX_BODY bytes, must be UTF-8 JSON nested at most MAX_NESTING deep, and ids and
groups are short printable names (ID_PATTERN, GROUP_PATTERN), so nothing a client sends can
crash a thread or forge a log line. Requests have a deadline (sonix.httpguard). Options: a
shared token (`Authorization: Bearer`, off by default as Zincati sends none) and serving only
the configured groups.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from sonix.agents.common import escape
from sonix.fleetlock.etcd import EtcdError, EtcdUnavailable
from sonix.fleetlock.semaphore import Contention, Decision, Semaphore, StateError
from sonix.httpguard import MAX_LOG_LINE, REQUEST_TIMEOUT, GuardedHandler, GuardedServer

PROTOCOL_HEADER = "fleet-lock-protocol"
PRE_REBOOT = "/v1/pre-reboot"
STEADY_STATE = "/v1/steady-state"
STATUS = "/v1/status"
# The protocol's group syntax; it also keeps groups from reaching outside the etcd prefix.
GROUP_PATTERN = re.compile(r"[a-zA-Z0-9.-]{1,128}")
# Machine ids: Zincati sends the 32 hex digits of an app-specific machine id, people use host
# names; nothing that could end a log line, separate holders (", ") or hide in a terminal.
ID_PATTERN = re.compile(r"[a-zA-Z0-9._:@+-]{1,128}")
ID_SYNTAX = "1 to 128 letters, digits or . _ : @ + -"
MAX_BODY = 64 * 1024
MAX_NESTING = 16  # the protocol's body nests 2 deep; json recurses once per level
SHOWN = 64  # characters of a rejected value quoted back in an error

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


def shown(value: object) -> str:
    """A value quoted back to the client and the log: repr (escapes), at most SHOWN chars."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text (outside strings), counted before
    json.loads sees it: json recurses per level, and a body of 60 KB of `[` ends in
    RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(body: bytes) -> Any:
    """The body as JSON: UTF-8, nested at most MAX_NESTING deep."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise bad_request(
            "invalid_body", f"body is not UTF-8 (byte {error.start}): send JSON in UTF-8"
        ) from None
    if nesting_depth(text) > MAX_NESTING:
        raise bad_request(
            "invalid_body", f"body nests deeper than {MAX_NESTING} levels: not a FleetLock body"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise bad_request("invalid_body", f"body is not JSON: {shown(str(error))[1:-1]}") from None


def parse_request(protocol_header: str | None, body: bytes) -> ClientParams:
    """Check a lock or unlock request: the protocol header's value and the raw body."""
    if protocol_header is None:
        raise bad_request("missing_protocol_header", f"header '{PROTOCOL_HEADER}: true' is missing")
    if protocol_header.strip().lower() != "true":
        raise bad_request(
            "missing_protocol_header",
            f"header '{PROTOCOL_HEADER}' must be 'true', not {shown(protocol_header.strip())}",
        )
    if not body.strip():
        raise bad_request(
            "invalid_body",
            'body is empty: send {"client_params": {"id": "<machine id>", "group": "<group>"}}',
        )
    data = parse_json(body)
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
            f"client_params.group {shown(group)} must match ^[a-zA-Z0-9.-]+$ "
            "(at most 128 characters)",
        )
    if not ID_PATTERN.fullmatch(client_id):
        raise bad_request(
            "invalid_client_params", f"client_params.id {shown(client_id)} must be {ID_SYNTAX}"
        )
    return ClientParams(client_id, group)


def check_token(expected: bytes | None, authorization: str | None) -> None:
    """With a token configured, the request must carry `Authorization: Bearer <token>`
    (RFC 6750); compared in constant time so the answer's timing tells nothing."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").strip().partition(" ")
    if not authorization:
        problem = "the Authorization header is missing"
    elif scheme.lower() != "bearer":
        problem = "the Authorization header is not of the Bearer scheme"
    elif not hmac.compare_digest(given.strip().encode("latin-1", "replace"), expected):
        problem = "the token is wrong"
    else:
        return
    raise RequestError(
        HTTPStatus.UNAUTHORIZED, "unauthorized",
        f"{problem}: send 'Authorization: Bearer <token>' with the token of the server's "
        "--token-file",
    )


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


class FleetLockServer(GuardedServer):
    """The HTTP server: one thread per connection, decisions made by `semaphore`.

    `token`: when set, every request needs `Authorization: Bearer <token>`.
    `only_groups`: when set, a slot can be taken only in these groups (releasing stays
    possible in any group: it never creates a key, and frees a slot taken before a group
    was dropped from the configuration)."""

    def __init__(
        self,
        address: tuple[str, int],
        semaphore: Semaphore,
        *,
        log: Callable[[str], None] = log_to_stderr,
        token: bytes | None = None,
        only_groups: Collection[str] | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.semaphore = semaphore
        self.log = log
        self.token = token
        self.only_groups = frozenset(only_groups) if only_groups is not None else None
        super().__init__(address, FleetLockHandler, request_timeout=request_timeout)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


class FleetLockHandler(GuardedHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length
    body_methods = frozenset({"POST"})
    server: FleetLockServer

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        what = {PRE_REBOOT: "pre-reboot", STEADY_STATE: "steady-state"}.get(path)
        try:
            body = self._read_body()
            check_token(self.server.token, self.headers.get("Authorization"))
            if what is None:
                raise self._unknown_path(path, "POST")
            params = parse_request(self.headers.get(PROTOCOL_HEADER), body)
            if what == "pre-reboot":
                self._check_group(params.group)
            semaphore = self.server.semaphore
            decide = semaphore.lock if what == "pre-reboot" else semaphore.unlock
            decision = self._ask_etcd(lambda: decide(params.group, params.id))
        except RequestError as error:
            self._fail(what or f"POST {path}", error)
            return
        holders = ", ".join(decision.holders) or "none"
        self._log(
            f"{what} {decision.group}/{decision.client_id} from {self.client_address[0]}: "
            f"{decision.outcome.value} ({len(decision.holders)}/{decision.slots} held: {holders})"
        )
        status = HTTPStatus.OK if decision.granted else HTTPStatus.CONFLICT
        self._reply(status, decision_body(decision))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            check_token(self.server.token, self.headers.get("Authorization"))
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
        })

    def _read_body(self) -> bytes:
        """The body, by its one Content-Length. Where the length is unknown or refused, the
        connection closes after the answer: what follows is not a next request."""
        lengths = self.headers.get_all("Content-Length", [])
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "invalid_body",
                "send the body with a Content-Length (chunked bodies are not supported)",
            )
        if not lengths:
            return b""  # no length, no body (RFC 9112 §6.3)
        if len(set(lengths)) > 1 or not re.fullmatch(r"[0-9]{1,19}", lengths[0].strip()):
            self.close_connection = True
            raise bad_request(
                "invalid_body", f"Content-Length {shown(', '.join(lengths))} is not one number"
            )
        length = int(lengths[0])
        if length > MAX_BODY:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "invalid_body",
                f"body of {length} bytes is larger than {MAX_BODY} bytes",
            )
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionAbortedError("the client closed the connection mid-body")
        return body

    def _check_group(self, group: str) -> None:
        allowed = self.server.only_groups
        if allowed is not None and group not in allowed:
            raise RequestError(
                HTTPStatus.FORBIDDEN, "unknown_group",
                f"group {shown(group)} is not configured on this server; its groups are "
                f"{', '.join(sorted(allowed))}",
            )

    def _unknown_path(self, path: str, method: str) -> RequestError:
        if path in (PRE_REBOOT, STEADY_STATE, STATUS):
            allowed = "GET" if path == STATUS else "POST"
            return RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed",
                f"{method} is not allowed on {path}, only {allowed}", allow=allowed,
            )
        return RequestError(
            HTTPStatus.NOT_FOUND, "not_found",
            f"no endpoint {path}: use POST {PRE_REBOOT}, POST {STEADY_STATE} or GET {STATUS}",
        )

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
            ) from error

    def _log(self, line: str) -> None:
        line = escape(line)
        if len(line) > MAX_LOG_LINE:  # garbage taken for a method or path, say
            line = line[: MAX_LOG_LINE - 1] + "…"
        self.server.log(line)

    def _fail(self, what: str, error: RequestError) -> None:
        self._log(
            f"{what} from {self.client_address[0]}: {error.status.value} {error.kind}: "
            f"{error.value}"
        )
        headers = {"Allow": error.allow} if error.allow else {}
        if error.status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="fleetlock"'
        self._reply(error.status, {"kind": error.kind, "value": error.value}, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """http.server's own refusals (a malformed request line, headers too long, an
        unknown method) as JSON too; the connection closes, its stream is not trusted."""
        self.close_connection = True
        self.remember_command()
        status = HTTPStatus(code)
        kind = "method_not_allowed" if code == HTTPStatus.NOT_IMPLEMENTED else "bad_request"
        text = f"{message or status.phrase}: {explain or status.description}"
        if len(text) > 4 * SHOWN:  # a request line of 64 KiB is not quoted back whole
            text = text[: 4 * SHOWN - 1] + "…"
        self._fail(f"{self.command or 'request'}", RequestError(status, kind, text))

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
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: decisions are logged instead of every request."""

    def log_error(self, format: str, *args: Any) -> None:
        """Timeouts and internal errors: one line in the decision log."""
        self._log(f"{self.client_address[0]}: {format % args}")
