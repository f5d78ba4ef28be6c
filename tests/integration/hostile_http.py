"""Hostile requests for sonix's HTTP servers: the corpora of tests/fixtures/hostile-http/ (raw
request bytes and the expected answer, as data), a raw-socket client that checks every answer is
well-formed HTTP, and a seeded generator of malformed requests for the bounded fuzz tests.

Corpus files are TOML, one `[[case]]` per request:

    name     unique, shown when the case fails
    request  the raw request; Python byte escapes are decoded (\\r \\n \\x00 \\xff); {body} is
             replaced by `body`, {length} by the body's length and {token} by the test
             server's token
    body     escapes decoded too; repeated `repeat` times (default 1), or, when `fill` is
             given, with {fill} in it replaced by `fill` repeated `repeat` times
    status   the expected status code, or "timeout": the request is incomplete and the server
             closes the connection after its request timeout without answering, or "close":
             the server closes the connection at once without answering
    kind     (FleetLock) the error kind of the JSON answer
    value    what the answer's body contains (escapes decoded); FleetLock: its JSON `value`
    closes   true: the server closes the connection after its answer
    server   (FleetLock) "plain" (default) or "guarded" (--token-file, --only-configured-groups)
"""

from __future__ import annotations

import codecs
import contextlib
import json
import random
import re
import select
import socket
import threading
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPORA = Path(__file__).resolve().parents[1] / "fixtures" / "hostile-http"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) ([^\r\n]*)\r\n")
HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([^\r\n]*)\r\n")


@dataclass(frozen=True)
class Case:
    name: str
    request: bytes
    status: int | str
    kind: str | None = None
    value: str | None = None
    closes: bool = False
    server: str = "plain"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Exchange:
    """What came back on one connection: the answers, and whether the server closed it."""

    responses: list[Response] = field(default_factory=list)
    closed: bool = False
    seconds: float = 0.0


class Malformed(AssertionError):
    """The server's bytes are not a well-formed HTTP answer."""


def decode_escapes(text: str) -> bytes:
    """Python's bytes escapes decoded; others (a JSON `\\u2028`) are kept as they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return codecs.escape_decode(text.encode("utf-8"))[0]


def load_corpus(name: str, token: str = "") -> list[Case]:
    data = tomllib.loads((CORPORA / name).read_text())
    cases = []
    for raw in data["case"]:
        body = decode_escapes(raw.get("body", ""))
        if "fill" in raw:
            body = body.replace(b"{fill}", decode_escapes(raw["fill"]) * raw.get("repeat", 1))
        else:
            body *= raw.get("repeat", 1)
        request = decode_escapes(raw["request"])
        request = request.replace(b"{length}", str(len(body)).encode())
        request = request.replace(b"{token}", token.encode()).replace(b"{body}", body)
        cases.append(Case(raw["name"], request, raw["status"], raw.get("kind"), raw.get("value"),
                          raw.get("closes", False), raw.get("server", "plain")))
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def exchange(port: int, request: bytes, *, head: bool = False, timeout: float = 10.0,
             half_close: bool = False, linger: float = 0.1) -> Exchange:
    """Send `request` on a new connection and read every answer until the server closes the
    connection, stays silent for `timeout` seconds, or for `linger` seconds after an answer.
    `half_close`: end the sending side at once, so an incomplete request ends now instead of
    at the server's deadline."""
    started = time.monotonic()
    result = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before it read everything: its answer is read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        if half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        data = read_all(sock, timeout, linger)
        result.closed = data.closed
    result.seconds = time.monotonic() - started
    result.responses = parse_responses(data.bytes, head=head)
    return result


def trickle(port: int, start: bytes, *, give_up: float, between: Callable[[], None]) -> float:
    """Send `start`, then one more byte every 0.2 s (slowloris), calling `between` after each,
    until the server closes the connection; the seconds that took (AssertionError when the
    server still listens after `give_up` seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(start)
        while time.monotonic() - started < give_up:
            try:
                sock.sendall(b"a")
            except OSError:
                return time.monotonic() - started
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable and sock.recv(1024) == b"":
                return time.monotonic() - started
            between()
    raise AssertionError(f"a client trickling its request was not cut off in {give_up} s")


@dataclass
class Received:
    bytes: bytes
    closed: bool


def read_all(sock: socket.socket, timeout: float, linger: float) -> Received:
    chunks: list[bytes] = []
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return Received(b"".join(chunks), closed=False)
        except ConnectionResetError:
            return Received(b"".join(chunks), closed=True)
        if not chunk:
            return Received(b"".join(chunks), closed=True)
        chunks.append(chunk)
        if answers_complete(b"".join(chunks)):
            sock.settimeout(linger)  # an answer is in: wait briefly for a close or more


def answers_complete(data: bytes) -> bool:
    try:
        return bool(parse_responses(data))
    except Malformed:
        return False


def parse_responses(data: bytes, *, head: bool = False) -> list[Response]:
    """Every answer in `data`; Malformed when any byte is not part of a well-formed answer."""
    responses: list[Response] = []
    while data:
        match = STATUS_LINE.match(data)
        if not match:
            raise Malformed(f"not a status line: {data[:80]!r}")
        status, position = int(match[1]), match.end()
        headers: dict[str, str] = {}
        while not data.startswith(b"\r\n", position):
            header = HEADER_LINE.match(data, position)
            if not header:
                raise Malformed(f"not a header line: {data[position:position + 80]!r}")
            headers[header[1].decode().lower()] = header[2].decode("latin-1")
            position = header.end()
        position += 2
        if status < 200:
            data = data[position:]
            continue  # 100 Continue: the answer follows
        if "content-length" not in headers or not headers["content-length"].isdigit():
            raise Malformed(f"answer {status} without a Content-Length: {headers}")
        # HEAD: the first answer has no body; later ones answer whatever the leftover bytes
        # of a malformed request became, not a HEAD request.
        length = 0 if head and not responses else int(headers["content-length"])
        if len(data) < position + length:
            raise Malformed(f"answer {status} has {len(data) - position} of {length} bytes")
        responses.append(Response(status, headers, data[position:position + length]))
        data = data[position + length:]
    return responses


def json_body(response: Response) -> dict[str, Any]:
    """A FleetLock answer's body: JSON, an object, an error with a kind and a value."""
    assert response.headers.get("content-type") == "application/json", response
    body = json.loads(response.body)
    assert isinstance(body, dict), body
    if response.status >= 400:
        assert set(body) == {"kind", "value"}, body
        assert re.fullmatch(r"[a-z_]+", body["kind"]), body
        assert isinstance(body["value"], str) and body["value"], body
    return body


def is_head(request: bytes) -> bool:
    """Whether the server takes `request` for HEAD (no body in the answer): the first word of
    its first line, split as http.server splits it."""
    words = str(request.split(b"\n", 1)[0], "iso-8859-1").split()
    return words[:1] == ["HEAD"]


def check_case(case: Case, port: int, request_timeout: float, fleetlock: bool) -> None:
    """Send one corpus case and check the server did what the case says."""
    head = is_head(case.request)
    if case.status == "timeout":
        result = exchange(port, case.request, head=head, timeout=request_timeout + 5)
        assert result.responses == [] and result.closed, (case.name, result)
        assert result.seconds >= request_timeout * 0.8, (case.name, result.seconds)
        return
    if case.status == "close":
        result = exchange(port, case.request, timeout=request_timeout + 5)
        assert result.responses == [] and result.closed, (case.name, result)
        assert result.seconds < request_timeout * 0.8, (case.name, result.seconds)
        return
    # A case that must close is left open on the client's side, so that the close is the
    # server's decision; the others end their side, so the server closes once it answered.
    result = exchange(port, case.request, head=head, timeout=request_timeout + 5,
                      linger=request_timeout, half_close=not case.closes)
    assert result.responses, (case.name, "no answer", result)
    first = result.responses[0]
    assert first.status == case.status, (case.name, first)
    text = ""
    if fleetlock and not head:
        body = json_body(first)
        if case.kind:
            assert body.get("kind") == case.kind, (case.name, body)
        text = body.get("value", "")
    if case.value and fleetlock:
        assert case.value in text, (case.name, text)
    elif case.value:
        assert decode_escapes(case.value) in first.body, (case.name, first.body[:200])
    if case.closes:
        assert result.closed and first.headers.get("connection") == "close", (case.name, result)


# ---- the fuzz generator ---------------------------------------------------------------------

NOISE = [b"\x00", b"\xff", b"\r", b"\n", b"\r\n", b" ", b":", b"%", b"%00", b"%2e", b"..",
         b"/", b"\\", b"[", b"{", b'"', b"9" * 40, b"-", b"=", b",", b"\x1b[2J", b"\xc3\x28"]


def run_corpus(cases: list[Case], port_of: Callable[[Case], int], request_timeout: float,
               *, fleetlock: bool, after_each: Callable[[Case], None]) -> None:
    """Every case against its server; `after_each` checks that a good request still works
    after it. Incomplete requests wait for the server's deadline, so they run all at once,
    beside the others. Every failing case is listed, not only the first."""
    failures: list[str] = []

    def run(case: Case) -> None:
        try:
            check_case(case, port_of(case), request_timeout, fleetlock=fleetlock)
        except Exception as error:
            failures.append(f"{case.name}: {error!r}")

    slow = [threading.Thread(target=run, args=(case,)) for case in cases
            if case.status == "timeout"]
    for thread in slow:
        thread.start()
    for case in cases:
        if case.status != "timeout":
            run(case)
            after_each(case)
    for thread in slow:
        thread.join()
    assert not failures, "\n".join(failures)


def mutate(rng: random.Random, request: bytes) -> bytes:
    """One to four random changes of a good request: bytes flipped, inserted, deleted,
    repeated, a header added, the request cut short."""
    data = bytearray(request)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        at = rng.randrange(len(data) + 1) if data else 0
        if choice == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif choice == 1:
            data[at:at] = rng.choice(NOISE) * rng.choice([1, 1, 2, 100, 5000])
        elif choice == 2:
            del data[at:at + rng.randint(1, 20)]
        elif choice == 3:
            data = data[:at]
        elif choice == 4:
            end = request.find(b"\r\n") + 2
            data[end:end] = random_header(rng)
        elif choice == 5:
            span = data[at:at + rng.randint(1, 10)]
            data[at:at] = bytes(span) * rng.randint(2, 2000)
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
    return bytes(data)


def random_header(rng: random.Random) -> bytes:
    name = rng.choice([b"Content-Length", b"Transfer-Encoding", b"Range", b"If-Range",
                       b"Authorization", b"fleet-lock-protocol", b"Expect", b"Connection",
                       b"X-" + b"a" * rng.randint(1, 9000)])
    value = rng.choice([b"-1", b"0", b"99999999999999999999", b"1" * 5000, b"chunked",
                        b"bytes=" + b"9" * 5000 + b"-", b"bytes=-" + b"1" * 5000,
                        b"bytes=0-0,1-1", b"100-continue", b"close", b"Bearer \xff",
                        b"true\x00", b"\xe2\x80\xa8", b""])
    return name + b": " + value + b"\r\n"


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any shape: the protocol's body with wrong types, deep nesting, odd
    strings and numbers."""
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1, 1e308, 2**70, "", "default"])
    if kind == 1:
        return "".join(rng.choice("aZ9.-_\n\r\x00\x1b\u2028\u00e9\ud7ff/ ,") for _ in
                       range(rng.choice([1, 5, 129, 2000])))
    if kind == 2:
        return rng.random() * 10 ** rng.randint(-5, 300)
    if kind == 3:
        return {"client_params": {"id": random_json(rng, depth + 1),
                                  "group": random_json(rng, depth + 1)}}
    if kind == 4:
        return {"client_params": {"id": f"fuzz{rng.randrange(5)}",
                                  "group": rng.choice(["default", "fuzz", "a" * 129])}}
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == 6:
        return {str(rng.random()): random_json(rng, depth + 1)}
    return {"client_params": random_json(rng, depth + 1)}


def fuzz_body(rng: random.Random) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return rng.choice([b"[", b"{\"a\":", b"\"", b"1"]) * rng.randint(1, 60_000)
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    return json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5).encode(
        "utf-8", "surrogatepass")
