"""`sonix fleetlock-server` against a real etcd on loopback (the `testing` package set).

One etcd serves the whole module; every test keeps its keys under a prefix of its own. Lock
servers run as `sonix fleetlock-server` processes, as in production, on free ports
(`--listen 127.0.0.1:0`; the server prints its URL on stdout once it listens).
"""

from __future__ import annotations

import collections
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_http import (
    Malformed,
    exchange,
    fuzz_body,
    is_head,
    json_body,
    load_corpus,
    mutate,
    run_corpus,
    trickle,
)

from sonix.fleetlock.etcd import EtcdClient, EtcdUnavailable
from sonix.fleetlock.semaphore import Semaphore, SlotConfig
from sonix.testing.etcd import EtcdServer, etcd_server, free_ports

LOCK = {"fleet-lock-protocol": "true"}


@pytest.fixture(scope="module")
def etcd_url() -> Iterator[str]:
    with etcd_server() as url:
        yield url


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"/test/{request.node.name}/"


class LockServer:
    """A `sonix fleetlock-server` process; its stderr (the decision log) in `log`."""

    def __init__(self, root: Path, log: Path, args: list[str]) -> None:
        self.log = log
        with open(log, "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sonix", "fleetlock-server", *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, cwd=root,
                env={**os.environ, "SONIX_ROOT": str(root)}, text=True,
            )
        self.url = self._read_url(timeout=20)

    def _read_url(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise AssertionError(f"lock server did not start:\n{self.log.read_text()}")
        return line

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(10)
        if self.process.stdout:
            self.process.stdout.close()
        return status


@pytest.fixture
def start_server(
    root: Path, tmp_path: Path, etcd_url: str, prefix: str
) -> Iterator[Callable[..., LockServer]]:
    servers: list[LockServer] = []

    def start(*args: str, listen: str = "127.0.0.1:0", etcd: str = etcd_url) -> LockServer:
        log = tmp_path / f"server{len(servers)}.log"
        server = LockServer(
            root, log, ["--listen", listen, "--etcd", etcd, "--prefix", prefix, *args]
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def post(url: str, path: str, client_id: str, group: str = "default",
         headers: dict[str, str] | None = None, data: bytes | None = None,
         ) -> tuple[int, dict[str, Any]]:
    payload = data if data is not None else json.dumps(
        {"client_params": {"id": client_id, "group": group}}
    ).encode()
    return request(url + path, payload, LOCK if headers is None else headers)


def request(url: str, data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def holders(url: str, group: str) -> list[str]:
    status, reply = request(url + "/v1/status")
    assert status == 200
    found: list[str] = reply["groups"].get(group, {}).get("holders", [])
    return found


def compete(urls: list[str], clients: int, group: str) -> dict[str, int]:
    """`clients` machines ask for a slot at the same moment, spread over the servers."""
    statuses: dict[str, int] = {}
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        barrier.wait()
        status, _ = post(urls[index % len(urls)], "/v1/pre-reboot", f"m{index}", group)
        statuses[f"m{index}"] = status

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_two_servers_never_grant_more_than_the_slots(
    start_server: Callable[..., LockServer],
) -> None:
    servers = [start_server("--group", "web=2"), start_server("--group", "web=2")]
    urls = [server.url for server in servers]
    for _ in range(3):
        statuses = compete(urls, 16, "web")
        winners = sorted(name for name, status in statuses.items() if status == 200)
        assert len(winners) == 2, statuses
        assert sorted(statuses.values()) == [200] * 2 + [409] * 14
        assert sorted(holders(urls[0], "web")) == winners
        assert sorted(holders(urls[1], "web")) == winners
        # The winners reboot and come back, through the other server this time.
        for index, winner in enumerate(winners):
            assert post(urls[index % 2], "/v1/steady-state", winner, "web")[0] == 200
        assert holders(urls[0], "web") == []


def test_restart_keeps_the_lock(start_server: Callable[..., LockServer]) -> None:
    first = start_server()
    assert post(first.url, "/v1/pre-reboot", "a")[0] == 200
    assert first.stop() == 0
    assert "fleetlock-server: stopped" in first.log.read_text()

    second = start_server(listen=f"127.0.0.1:{first.port}")
    assert second.url == first.url
    status, reply = post(second.url, "/v1/pre-reboot", "b")
    assert status == 409 and reply["kind"] == "failed_lock"
    assert "held by a" in reply["value"]
    assert post(second.url, "/v1/pre-reboot", "a")[0] == 200  # recursive: still a's slot
    assert post(second.url, "/v1/steady-state", "a")[0] == 200
    assert post(second.url, "/v1/steady-state", "a")[0] == 200  # nothing held: still fine
    assert post(second.url, "/v1/pre-reboot", "b")[0] == 200
    log = second.log.read_text()
    assert "pre-reboot default/b from 127.0.0.1: refused: all slots taken (1/1 held: a)" in log
    assert "steady-state default/a from 127.0.0.1: released (0/1 held: none)" in log


def test_group_slot_counts(start_server: Callable[..., LockServer]) -> None:
    server = start_server("--group", "default=1", "--group", "web=2", "--slots", "3")
    granted = {
        group: sum(post(server.url, "/v1/pre-reboot", f"m{i}", group)[0] == 200 for i in range(5))
        for group in ("default", "web", "db")
    }
    assert granted == {"default": 1, "web": 2, "db": 3}
    _, reply = request(server.url + "/v1/status")
    assert reply["default_slots"] == 3
    assert reply["groups"]["web"] == {"slots": 2, "holders": ["m0", "m1"]}
    assert reply["groups"]["db"] == {"slots": 3, "holders": ["m0", "m1", "m2"]}


def test_bad_requests(start_server: Callable[..., LockServer]) -> None:
    server = start_server()
    cases = [
        ({}, None, "missing_protocol_header", "fleet-lock-protocol: true"),
        (LOCK, b"not json", "invalid_body", "body is not JSON"),
        (LOCK, b'{"client_params": {"group": "default"}}', "invalid_client_params", "id"),
        (LOCK, b'{"client_params": {"id": "a", "group": "a b"}}', "invalid_client_params",
         "group"),
    ]
    for headers, data, kind, text in cases:
        status, reply = post(server.url, "/v1/pre-reboot", "a", headers=headers, data=data)
        assert (status, reply["kind"]) == (400, kind)
        assert text in reply["value"]
    assert holders(server.url, "default") == []


def test_etcd_unreachable_at_start(root: Path, tmp_path: Path) -> None:
    [port] = free_ports(1)
    result = subprocess.run(
        [sys.executable, "-m", "sonix", "fleetlock-server", "--listen", "127.0.0.1:0",
         "--etcd", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, cwd=root, timeout=30, check=False,
    )
    assert result.returncode == 1
    assert f"etcd is not reachable at http://127.0.0.1:{port}" in result.stderr
    assert "hint: start etcd first" in result.stderr
    assert result.stdout == ""


def test_etcd_restart_loses_no_lock(tmp_path: Path, prefix: str) -> None:
    """While etcd is down the server answers 503 (Zincati retries); afterwards the lock is
    still there. Also: a dead first endpoint is skipped for the next one."""
    with EtcdServer(tmp_path / "etcd") as etcd:
        [dead] = free_ports(1)
        client = EtcdClient([f"http://127.0.0.1:{dead}", etcd.url], timeout=2)
        semaphore = Semaphore(client, SlotConfig(), prefix=prefix)
        assert semaphore.lock("default", "a").granted
        etcd.stop()
        with pytest.raises(EtcdUnavailable):
            semaphore.lock("default", "b")
        started = time.monotonic()
        etcd.start()
        assert time.monotonic() - started < 20
        assert not semaphore.lock("default", "b").granted
        assert semaphore.status()["default"].holders == ("a",)


# ---- hostile requests -------------------------------------------------------------------------

TOKEN = "fleet-token-0123456789abcdef"
REQUEST_TIMEOUT = 2.0


def good_status(server: LockServer, headers: dict[str, str] | None = None) -> None:
    """The server still answers a good request on a new connection."""
    status, reply = request(server.url + "/v1/status", headers=headers)
    assert status == 200 and "groups" in reply, reply


def assert_clean_log(server: LockServer) -> None:
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    for line in log.splitlines():
        assert line.isprintable(), line  # nothing a client sent could end or colour a line
        assert len(line) <= 4096, line[:200]  # nor make one 64 KiB long
    assert server.process.poll() is None, "the server died"


def test_hostile_request_corpus(start_server: Callable[..., LockServer], tmp_path: Path) -> None:
    """tests/fixtures/hostile-http/fleetlock.toml against two real servers: every answer is
    well-formed JSON with the expected status and kind; incomplete requests are dropped at the
    request timeout; the servers keep serving and log no traceback."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    timeout = ["--request-timeout", str(REQUEST_TIMEOUT)]
    servers = {
        "plain": start_server(*timeout),
        "guarded": start_server(*timeout, "--group", "web=1", "--only-configured-groups",
                                "--token-file", str(token_file)),
    }
    cases = load_corpus("fleetlock.toml", token=TOKEN)
    assert len(cases) >= 70
    run_corpus(cases, lambda case: servers[case.server].port, REQUEST_TIMEOUT, fleetlock=True,
               after_each=lambda case: good_status(servers[case.server],
                                                   {"Authorization": f"Bearer {TOKEN}"}))
    for server in servers.values():
        assert_clean_log(server)
    log = servers["plain"].log.read_text()
    assert "400 invalid_client_params: client_params.id 'a\\npre-reboot" in log
    assert TOKEN not in servers["guarded"].log.read_text()
    assert post(servers["plain"].url, "/v1/pre-reboot", "after")[0] == 200
    assert holders(servers["plain"].url, "default") == ["after"]


def test_trickling_client_is_cut_off(start_server: Callable[..., LockServer]) -> None:
    """A client that sends its body one byte every 0.2 s (slowloris) is cut off at the
    request's deadline; good requests are answered meanwhile."""
    server = start_server("--request-timeout", str(REQUEST_TIMEOUT))
    start = (b"POST /v1/pre-reboot HTTP/1.1\r\nfleet-lock-protocol: true\r\n"
             b"Content-Length: 60000\r\n\r\n")
    seconds = trickle(server.port, start, give_up=REQUEST_TIMEOUT + 8,
                      between=lambda: good_status(server))
    assert REQUEST_TIMEOUT * 0.8 < seconds < REQUEST_TIMEOUT + 2, seconds
    assert_clean_log(server)


FUZZ_CASES = 1500
FUZZ_SECONDS = 20.0
GOOD = (b"POST /v1/pre-reboot HTTP/1.1\r\nHost: t\r\nfleet-lock-protocol: true\r\n"
        b"Content-Length: %d\r\n\r\n%s")
GOOD_BODY = b'{"client_params": {"id": "fuzz", "group": "default"}}'


def fuzz_request(rng: random.Random) -> bytes:
    """A good request with a random body, or a good request with random changes."""
    if rng.random() < 0.4:
        body = fuzz_body(rng)
        return GOOD % (len(body), body)
    return mutate(rng, GOOD % (len(GOOD_BODY), GOOD_BODY))


def test_fuzz(start_server: Callable[..., LockServer]) -> None:
    """Seeded random malformed requests (bounded: FUZZ_CASES or FUZZ_SECONDS, loopback):
    every byte the server sends is part of a well-formed HTTP answer with a JSON body, it
    never logs a traceback, and good requests keep working."""
    server = start_server("--request-timeout", str(REQUEST_TIMEOUT))
    rng = random.Random(14)
    started = time.monotonic()
    count = 0
    statuses: collections.Counter[int] = collections.Counter()
    while count < FUZZ_CASES and time.monotonic() - started < FUZZ_SECONDS:
        raw = fuzz_request(rng)
        try:
            result = exchange(server.port, raw, half_close=True, timeout=REQUEST_TIMEOUT + 3,
                              head=is_head(raw))
        except Malformed as error:
            raise AssertionError(f"case {count} ({raw[:200]!r}): {error}") from None
        for index, response in enumerate(result.responses):
            if not (index == 0 and is_head(raw)):
                json_body(response)
            statuses[response.status] += 1
        assert result.closed, f"case {count}: the connection stayed open after EOF"
        count += 1
        if count % 50 == 0:
            good_status(server)
    assert count >= 100, f"only {count} cases in {FUZZ_SECONDS} s"
    print(f"{count} cases in {time.monotonic() - started:.1f} s, answers: {dict(statuses)}")
    assert {200, 400, 409, 411, 413} <= set(statuses), statuses  # the cases reach every check
    good_status(server)
    assert_clean_log(server)
    assert post(server.url, "/v1/steady-state", "fuzz")[0] == 200
