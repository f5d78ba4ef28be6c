"""FleetLock: request parsing, the slot logic against an in-memory etcd, the HTTP answers,
and the command line's argument types. The real etcd is in tests/integration/test_fleetlock_etcd.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sonix import ui
from sonix.commands import fleetlock_server
from sonix.commands.serve import parse_listen
from sonix.fleetlock.etcd import EtcdUnavailable, KeyValue, _prefix_end
from sonix.fleetlock.semaphore import (
    Contention,
    Outcome,
    Semaphore,
    SlotConfig,
    StateError,
    decode_holders,
)
from sonix.fleetlock.server import FleetLockServer, RequestError, parse_request


class FakeEtcd:
    """An in-memory key space with etcd's revision rules (one revision per write)."""

    def __init__(self) -> None:
        self.data: dict[str, KeyValue] = {}
        self.revision = 1
        self.writes = 0
        self.lock = threading.Lock()
        # Called inside put_if_unchanged before the comparison: lets a test play another
        # lock server that writes between our read and our write.
        self.before_put: Callable[[], None] | None = None
        self.down = False

    def get(self, key: str) -> KeyValue | None:
        self._check()
        with self.lock:
            return self.data.get(key)

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        self._check()
        with self.lock:
            return sorted((kv for k, kv in self.data.items() if k.startswith(prefix)),
                          key=lambda kv: kv.key)

    def put_if_unchanged(self, key: str, value: bytes, mod_revision: int) -> bool:
        self._check()
        if self.before_put:
            self.before_put()
        with self.lock:
            current = self.data.get(key)
            if (current.mod_revision if current else 0) != mod_revision:
                return False
            self.put(key, value)
            return True

    def put(self, key: str, value: bytes) -> None:
        self.revision += 1
        self.writes += 1
        self.data[key] = KeyValue(key, value, self.revision)

    def holders(self, group: str) -> list[str]:
        return decode_holders(self.data.get("/sonix/fleetlock/" + group))

    def _check(self) -> None:
        if self.down:
            raise EtcdUnavailable("http://127.0.0.1:2379/v3/kv/range: Connection refused")


def body(client_id: str = "m1", group: str = "default") -> bytes:
    return json.dumps({"client_params": {"id": client_id, "group": group}}).encode()


# ---- request parsing ------------------------------------------------------------------------


def test_parse_request_reads_id_and_group() -> None:
    params = parse_request("true", body("c988d2509fdf", "workers"))
    assert (params.id, params.group) == ("c988d2509fdf", "workers")
    for name in ("x" * 128, "node-1.example.org", "root@h:1+a_b"):
        assert parse_request("true", body(name, "g" * 128)).id == name


def test_parse_request_ignores_unknown_fields_and_header_case() -> None:
    raw = json.dumps({"client_params": {"id": "a", "group": "g", "x": 1}, "y": 2}).encode()
    assert parse_request(" TRUE ", raw).id == "a"


BAD_REQUESTS = [
    # (header, body, kind, part of the description)
    (None, body(), "missing_protocol_header", "fleet-lock-protocol: true' is missing"),
    ("false", body(), "missing_protocol_header", "must be 'true', not 'false'"),
    ("true", b"{not json", "invalid_body", "body is not JSON"),
    ("true", b"", "invalid_body", "body is empty"),
    ("true", b" \n", "invalid_body", "body is empty"),
    ("true", b"[" * 60_000, "invalid_body", "nests deeper than 16 levels"),
    ("true", b'{"a":' * 17 + b"1" + b"}" * 17, "invalid_body", "nests deeper"),
    ("true", b'{"client_params": {"id": "[[[[[[[[[[[[[[[[[[[[", "group": "g"}}',
     "invalid_client_params", "id"),  # brackets in a string do not nest
    ("true", b"1" * 5000, "invalid_body", "body is not JSON"),
    ("true", b"\xff\xfe{}", "invalid_body", "not UTF-8 (byte 0)"),
    ("true", '{"client_params": {"id": "a", "group": "\u00e9"}}'.encode("latin-1"),
     "invalid_body", "not UTF-8"),
    ("true", b"NaN", "invalid_body", '{"client_params"'),
    ("true", b'{"client_params": {"id": ["a"], "group": "g"}}', "invalid_client_params", "id"),
    ("true", b'{"client_params": {"id": "a", "group": 1.5}}', "invalid_client_params", "group"),
    ("true", b'{"client_params": null}', "invalid_body", '{"client_params"'),
    ("true", body(client_id="a\nevil"), "invalid_client_params", "'a\\nevil' must be 1 to 128"),
    ("true", body(client_id="a\rb"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="a\x1b[31m"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="a\u2028b"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="a b"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="a,b"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="\u00e9"), "invalid_client_params", "must be 1 to 128"),
    ("true", body(client_id="x" * 129), "invalid_client_params", "…"),
    ("true", body(group="g" * 129), "invalid_client_params", "at most 128"),
    ("true", body(group="a\n"), "invalid_client_params", "must match"),
    ("true", b"[1]", "invalid_body", '{"client_params"'),
    ("true", b'{"client_params": "m1"}', "invalid_body", '{"client_params"'),
    ("true", b'{"client_params": {"group": "g"}}', "invalid_client_params", "id must be"),
    ("true", body(client_id=""), "invalid_client_params", "id must be a non-empty string"),
    ("true", b'{"client_params": {"id": 7, "group": "g"}}', "invalid_client_params", "id"),
    ("true", b'{"client_params": {"id": "a"}}', "invalid_client_params", "group must be"),
    ("true", body(group="a/b"), "invalid_client_params", "must match ^[a-zA-Z0-9.-]+$"),
    ("true", body(group="web tier"), "invalid_client_params", "must match"),
]


@pytest.mark.parametrize(("header", "raw", "kind", "text"), BAD_REQUESTS)
def test_parse_request_says_what_is_wrong(
    header: str | None, raw: bytes, kind: str, text: str
) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(header, raw)
    assert caught.value.status == 400
    assert caught.value.kind == kind
    assert text in caught.value.value


# ---- the slots --------------------------------------------------------------------------------


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd()


def semaphore(etcd: FakeEtcd, groups: dict[str, int] | None = None, slots: int = 1,
              **kwargs: Any) -> Semaphore:
    return Semaphore(etcd, SlotConfig(groups or {}, slots), sleep=lambda _: None, **kwargs)


def test_lock_takes_free_slots_then_refuses(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd, {"web": 2})
    assert sem.lock("web", "a").outcome is Outcome.ACQUIRED
    assert sem.lock("web", "b").outcome is Outcome.ACQUIRED
    refused = sem.lock("web", "c")
    assert refused.outcome is Outcome.REFUSED and not refused.granted
    assert refused.holders == ("a", "b") and refused.slots == 2
    assert etcd.holders("web") == ["a", "b"]


def test_lock_is_recursive(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd)
    sem.lock("default", "a")
    writes = etcd.writes
    again = sem.lock("default", "a")
    assert again.outcome is Outcome.ALREADY_HELD and again.granted
    assert etcd.holders("default") == ["a"] and etcd.writes == writes


def test_unlock_releases_only_the_callers_slot(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd, slots=2)
    sem.lock("default", "a")
    sem.lock("default", "b")
    assert sem.unlock("default", "a").outcome is Outcome.RELEASED
    assert etcd.holders("default") == ["b"]
    assert sem.lock("default", "c").outcome is Outcome.ACQUIRED


def test_unlock_without_a_slot_succeeds_and_writes_nothing(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd)
    decision = sem.unlock("default", "a")
    assert decision.outcome is Outcome.NOT_HELD and decision.granted
    assert etcd.writes == 0


def test_groups_have_their_own_slots(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd, {"web": 2, "frozen": 0}, slots=1)
    assert [sem.lock("web", i).granted for i in "abc"] == [True, True, False]
    assert [sem.lock("db", i).granted for i in "ab"] == [True, False]  # default: 1
    assert not sem.lock("frozen", "a").granted
    assert etcd.holders("web") == ["a", "b"] and etcd.holders("db") == ["a"]


def test_state_lives_in_etcd_only(etcd: FakeEtcd) -> None:
    semaphore(etcd).lock("default", "a")
    restarted = semaphore(etcd)
    assert restarted.lock("default", "b").outcome is Outcome.REFUSED
    assert restarted.unlock("default", "a").outcome is Outcome.RELEASED


def test_lost_race_reads_again(etcd: FakeEtcd) -> None:
    """Another server takes the last slot between our read and our write: we must refuse."""
    sem = semaphore(etcd, slots=2)
    sem.lock("default", "a")

    def other_server_writes() -> None:
        etcd.before_put = None
        etcd.put("/sonix/fleetlock/default", b'{"holders": ["a", "other"]}')

    etcd.before_put = other_server_writes
    decision = sem.lock("default", "b")
    assert decision.outcome is Outcome.REFUSED
    assert etcd.holders("default") == ["a", "other"]


def test_endless_conflicts_give_up(etcd: FakeEtcd) -> None:
    etcd.before_put = lambda: etcd.put("/sonix/fleetlock/default", b'{"holders": []}')
    with pytest.raises(Contention, match="after 5 conflicting writes"):
        semaphore(etcd, attempts=5).lock("default", "a")


def test_threads_never_exceed_the_slots(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd, {"web": 3})
    granted: list[str] = []
    barrier = threading.Barrier(20)

    def client(name: str) -> None:
        barrier.wait()
        if sem.lock("web", name).outcome is Outcome.ACQUIRED:
            granted.append(name)

    threads = [threading.Thread(target=client, args=(f"m{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 3
    assert sorted(etcd.holders("web")) == sorted(granted)


def test_unexpected_value_in_etcd_is_an_error(etcd: FakeEtcd) -> None:
    etcd.put("/sonix/fleetlock/default", b'{"holders": "a"}')
    with pytest.raises(StateError, match=re.escape('is not {"holders": [ids]}')):
        semaphore(etcd).lock("default", "b")
    etcd.put("/sonix/fleetlock/default", b"garbage")
    with pytest.raises(StateError, match="is not JSON"):
        semaphore(etcd).lock("default", "b")


def test_status_lists_configured_and_used_groups(etcd: FakeEtcd) -> None:
    sem = semaphore(etcd, {"web": 2})
    sem.lock("db", "x")
    status = sem.status()
    assert list(status) == ["db", "web"]
    assert (status["db"].slots, status["db"].holders) == (1, ("x",))
    assert (status["web"].slots, status["web"].holders) == (2, ())


def test_prefix_end_covers_the_prefix() -> None:
    assert _prefix_end("/sonix/fleetlock/") == b"/sonix/fleetlock0"
    assert _prefix_end("grüß") == b"gr\xc3\xbc\xc3\xa0"  # ß is c3 9f in UTF-8
    assert _prefix_end("") == b"\0"


# ---- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def server(etcd: FakeEtcd) -> Iterator[tuple[FleetLockServer, list[str]]]:
    lines: list[str] = []
    srv = FleetLockServer(("127.0.0.1", 0), semaphore(etcd, {"web": 2}), log=lines.append)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv, lines
    srv.shutdown()
    srv.server_close()
    thread.join()


def call(
    url: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url + path, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


LOCK = {"fleet-lock-protocol": "true"}


def test_http_pre_reboot_and_steady_state(server: tuple[FleetLockServer, list[str]]) -> None:
    srv, lines = server
    assert call(srv.url, "/v1/pre-reboot", body("a", "web"), LOCK)[0] == 200
    assert call(srv.url, "/v1/pre-reboot", body("b", "web"), LOCK)[0] == 200
    status, reply = call(srv.url, "/v1/pre-reboot", body("c", "web"), LOCK)
    assert status == 409
    assert reply["kind"] == "failed_lock"
    assert "all 2 reboot slot(s) of group 'web' are taken (held by a, b)" in reply["value"]
    assert call(srv.url, "/v1/steady-state", body("a", "web"), LOCK)[0] == 200
    assert call(srv.url, "/v1/steady-state", body("a", "web"), LOCK)[0] == 200
    status, reply = call(srv.url, "/v1/pre-reboot", body("c", "web"), LOCK)
    assert status == 200 and reply["holders"] == ["b", "c"]
    assert lines[2] == (
        "pre-reboot web/c from 127.0.0.1: refused: all slots taken (2/2 held: a, b)"
    )
    assert lines[3].startswith("steady-state web/a from 127.0.0.1: released (1/2 held: b)")
    assert len(lines) == 6


def test_http_status(server: tuple[FleetLockServer, list[str]]) -> None:
    srv, _ = server
    call(srv.url, "/v1/pre-reboot", body("a", "db"), LOCK)
    status, reply = call(srv.url, "/v1/status")
    assert status == 200
    assert reply == {
        "prefix": "/sonix/fleetlock/",
        "default_slots": 1,
        "groups": {"db": {"slots": 1, "holders": ["a"]}, "web": {"slots": 2, "holders": []}},
    }


@pytest.mark.parametrize(
    ("path", "data", "headers", "code", "kind"),
    [
        ("/v1/pre-reboot", body(), {}, 400, "missing_protocol_header"),
        ("/v1/pre-reboot", b"{", LOCK, 400, "invalid_body"),
        ("/v1/steady-state", body(group="../x"), LOCK, 400, "invalid_client_params"),
        ("/v2/pre-reboot", body(), LOCK, 404, "not_found"),
        ("/v1/pre-reboot", None, {}, 405, "method_not_allowed"),
        ("/v1/status", body(), LOCK, 405, "method_not_allowed"),
    ],
)
def test_http_errors(
    server: tuple[FleetLockServer, list[str]],
    path: str, data: bytes | None, headers: dict[str, str], code: int, kind: str,
) -> None:
    srv, lines = server
    status, reply = call(srv.url, path, data, headers)
    assert (status, reply["kind"]) == (code, kind)
    assert reply["value"]
    assert lines and f"{code} {kind}" in lines[-1]


def test_http_etcd_down(server: tuple[FleetLockServer, list[str]], etcd: FakeEtcd) -> None:
    srv, _ = server
    etcd.down = True
    status, reply = call(srv.url, "/v1/pre-reboot", body(), LOCK)
    assert status == 503 and reply["kind"] == "etcd_unavailable"
    assert "Connection refused" in reply["value"]


def test_http_keeps_the_connection_after_an_error(
    server: tuple[FleetLockServer, list[str]],
) -> None:
    srv, _ = server
    connection = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    for headers in ({}, LOCK):
        connection.request("POST", "/v1/pre-reboot", body(), headers)
        response = connection.getresponse()
        response.read()
    assert response.status == 200
    connection.close()


TOKEN = b"s3cret-token-0123456789"


@pytest.fixture
def guarded(etcd: FakeEtcd) -> Iterator[tuple[FleetLockServer, list[str]]]:
    """A server with a token and only the group web."""
    lines: list[str] = []
    srv = FleetLockServer(("127.0.0.1", 0), semaphore(etcd, {"web": 2}), log=lines.append,
                          token=TOKEN, only_groups={"web"})
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv, lines
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic czNjcmV0", "Bearer s3cret-token-012345678",
    "Bearer s3cret-token-01234567890", "Bearer s3cret-token-0123456789x", "Token " + TOKEN.decode(),
    "Bearer \u00e9" + TOKEN.decode(),
])
def test_token_required(
    guarded: tuple[FleetLockServer, list[str]], etcd: FakeEtcd, authorization: str | None
) -> None:
    srv, lines = guarded
    headers = {**LOCK, **({"Authorization": authorization} if authorization is not None else {})}
    for path, data in (("/v1/pre-reboot", body("a", "web")), ("/v1/status", None),
                       ("/v2/unknown", body())):
        status, reply = call(srv.url, path, data, headers)
        assert (status, reply["kind"]) == (401, "unauthorized"), path
        assert "Authorization: Bearer <token>" in reply["value"]
        assert TOKEN.decode() not in lines[-1]
    assert etcd.writes == 0


def test_token_accepted(guarded: tuple[FleetLockServer, list[str]]) -> None:
    srv, _ = guarded
    for authorization in ("Bearer " + TOKEN.decode(), "bearer  " + TOKEN.decode() + " "):
        headers = {**LOCK, "Authorization": authorization}
        assert call(srv.url, "/v1/pre-reboot", body("a", "web"), headers)[0] == 200
        assert call(srv.url, "/v1/status", None, headers)[0] == 200


def test_only_configured_groups(guarded: tuple[FleetLockServer, list[str]], etcd: FakeEtcd
                                ) -> None:
    srv, lines = guarded
    headers = {**LOCK, "Authorization": "Bearer " + TOKEN.decode()}
    status, reply = call(srv.url, "/v1/pre-reboot", body("a", "db"), headers)
    assert (status, reply["kind"]) == (403, "unknown_group")
    assert reply["value"] == "group 'db' is not configured on this server; its groups are web"
    assert "403 unknown_group" in lines[-1]
    # Releasing never creates a key, so it stays possible in any group.
    assert call(srv.url, "/v1/steady-state", body("a", "db"), headers)[0] == 200
    assert etcd.writes == 0


def test_log_lines_cannot_be_forged(server: tuple[FleetLockServer, list[str]]) -> None:
    srv, lines = server
    raw = b'{"client_params": {"id": "a\\n pre-reboot web/x: granted", "group": "web"}}'
    assert call(srv.url, "/v1/pre-reboot", raw, LOCK)[0] == 400
    status, _ = call(srv.url, "/v1/pre-reboot", body(), {**LOCK, "fleet-lock-protocol": "no\x1b"})
    assert status == 400
    assert all(line.isprintable() for line in lines), lines


def test_http_level_errors_are_json(server: tuple[FleetLockServer, list[str]]) -> None:
    srv, lines = server
    connection = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    connection.request("PUT", "/v1/pre-reboot", body(), LOCK)
    response = connection.getresponse()
    reply = json.load(response)
    assert (response.status, reply["kind"]) == (501, "method_not_allowed")
    assert response.getheader("Connection") == "close"
    assert "PUT from 127.0.0.1: 501 method_not_allowed" in lines[-1]
    connection.close()


def test_read_token(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "token"  # type: ignore[operator]
    path.write_text(TOKEN.decode() + "\n")
    assert fleetlock_server.read_token(path) == TOKEN
    for bad in (b"", b"short", b"two words here, long enough", b"\xff" * 20, b"x" * 4097):
        path.write_bytes(bad)
        with pytest.raises(ui.SonixError, match="16 to 4096 visible ASCII"):
            fleetlock_server.read_token(path)
    with pytest.raises(ui.SonixError, match="cannot read the token file"):
        fleetlock_server.read_token(path.parent / "missing")


def test_only_configured_groups_needs_groups() -> None:
    parser = argparse.ArgumentParser()
    fleetlock_server.register(parser.add_subparsers())
    args = parser.parse_args(["fleetlock-server", "--only-configured-groups"])
    with pytest.raises(ui.SonixError, match="needs the groups: give them with --group"):
        fleetlock_server.run(args)


# ---- command line ----------------------------------------------------------------------------


def test_listen_address() -> None:
    """One parser for `sonix serve --listen` and `sonix fleetlock-server --listen`."""
    assert parse_listen("127.0.0.1:3333") == ("127.0.0.1", 3333)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("[::]:3333") == ("::", 3333)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in ("3333", "host:", ":80", "h:99999", "h:x", "::1:3333", "[::1]", "[zz::1]:80",
                "[1.2.3.4]:80", "h:\u0663", "h:" + "9" * 5000, "[::1]:80x", "h:-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_listen(bad)


def test_group_slots() -> None:
    assert fleetlock_server.group_slots("web=2") == ("web", 2)
    assert fleetlock_server.group_slots("frozen=0") == ("frozen", 0)
    for bad in ("web", "web=", "web=-1", "a/b=1", "=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            fleetlock_server.group_slots(bad)
