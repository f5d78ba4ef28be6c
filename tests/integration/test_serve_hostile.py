"""`sonix serve` under hostile requests, as a real process on loopback: the corpus of
tests/fixtures/hostile-http/serve.toml (hidden files, links, escapes, ranges of any length,
malformed HTTP), a client that trickles its request, and a seeded fuzz test."""

from __future__ import annotations

import collections
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_http import (
    Malformed,
    exchange,
    is_head,
    load_corpus,
    mutate,
    run_corpus,
    trickle,
)

REQUEST_TIMEOUT = 2.0
DATA = bytes(range(256)) * 40
VISIBLE = [DATA, b"sums\n", b"space\n", b"latin-1 name\n", b"{}\n"]


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    log: Path
    root: Path


def make_tree(tmp: Path) -> Path:
    """The tree that serve.toml describes: files, hidden files, links in and out, a FIFO."""
    root, outside = tmp / "channel", tmp / "outside"
    for directory in (root / "sub" / ".hid", root / ".hiddendir", outside):
        directory.mkdir(parents=True)
    files = {
        "sonix_2.usr": DATA, "SHA256SUMS": b"sums\n", "a b": b"space\n",
        "sub/file.json": b"{}\n", "sub/.hid/x": b"hidden dir\n", ".hidden": b"secret\n",
        ".hiddendir/file": b"secret dir\n",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    with open(os.path.join(os.fsencode(root), b"caf\xe9"), "wb") as f:
        f.write(b"latin-1 name\n")
    (outside / "secret").write_text("outside\n")
    links = {
        "link-good": "sonix_2.usr", "sub/link-up": "../SHA256SUMS", "link-hidden": ".hidden",
        "link-hidden-dir": ".hiddendir/file", "link-hidden-abs": str(root / ".hidden"),
        "link-out": str(outside / "secret"), "link-dir-out": str(outside),
        "link-loop": "link-loop", "link-dangling": "missing",
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def served(root: Path, tmp_path: Path) -> Iterator[Served]:
    channel = make_tree(tmp_path)
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sonix", "serve", str(channel), "--listen", "127.0.0.1:0",
             "--request-timeout", str(REQUEST_TIMEOUT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, cwd=root,
            text=True,
            # Ctrl-C's signal as at a terminal, even when the suite itself was started with
            # SIGINT ignored (`nohup … &`), which the server would otherwise inherit.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 20)
    url = process.stdout.readline().strip() if ready else ""
    try:
        assert url.startswith("http://127.0.0.1:"), log.read_text()
        yield Served(process, int(url.rstrip("/").rsplit(":", 1)[1]), log, channel)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        finally:
            if process.poll() is None:  # no server is left behind, whatever failed
                process.kill()
                process.wait()
            process.stdout.close()


def good_request(served: Served) -> None:
    """The server still serves a good request on a new connection."""
    request = b"GET /sonix_2.usr HTTP/1.1\r\nRange: bytes=10-19\r\n\r\n"
    [response] = exchange(served.port, request, half_close=True).responses
    assert (response.status, response.body) == (206, DATA[10:20])


def assert_clean_log(served: Served) -> None:
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    for line in log.splitlines():
        assert line.isprintable(), line  # nothing a client sent could end or colour a line
        assert len(line) <= 4096, line[:200]  # nor make one 64 KiB long
    assert served.process.poll() is None, "the server died"


def test_hostile_request_corpus(served: Served) -> None:
    cases = load_corpus("serve.toml")
    assert len(cases) >= 80
    run_corpus(cases, lambda case: served.port, REQUEST_TIMEOUT, fleetlock=False,
               after_each=lambda case: good_request(served))
    assert_clean_log(served)
    assert "forged\\x1b[2J" in served.log.read_text()  # escaped, on the request's own line


def test_trickling_client_is_cut_off(served: Served) -> None:
    """A client that sends one header byte every 0.2 s (slowloris) is cut off at the
    request's deadline, however often it sends; others are served meanwhile."""
    seconds = trickle(served.port, b"GET /SHA256SUMS HTTP/1.1\r\nX-Slow: ",
                      give_up=REQUEST_TIMEOUT + 8, between=lambda: good_request(served))
    assert REQUEST_TIMEOUT * 0.8 < seconds < REQUEST_TIMEOUT + 2, seconds
    good_request(served)
    assert_clean_log(served)


FUZZ_CASES = 1500
FUZZ_SECONDS = 20.0
TARGETS = [b"/sonix_2.usr", b"/SHA256SUMS", b"/.hidden", b"/link-hidden", b"/sub/file.json",
           b"/link-out", b"/%2e%2e/outside/secret", b"/caf%E9", b"/fifo", b"/link-good"]
RANGES = [b"bytes=0-9", b"bytes=-5", b"bytes=100-", b"bytes=" + b"9" * 5000 + b"-",
          b"bytes=0-" + b"9" * 5000, b"bytes=-" + b"9" * 30]


def fuzz_request(rng: random.Random) -> bytes:
    method = rng.choice([b"GET", b"GET", b"HEAD"])
    request = (method + b" " + rng.choice(TARGETS) + b" HTTP/1.1\r\nHost: t\r\nRange: "
               + rng.choice(RANGES) + b"\r\n\r\n")
    return request if rng.random() < 0.2 else mutate(rng, request)


def test_fuzz(served: Served) -> None:
    """Seeded random malformed requests (bounded: FUZZ_CASES or FUZZ_SECONDS, loopback):
    every byte the server sends is part of a well-formed answer, nothing hidden or outside is
    ever sent, no traceback is logged, and good requests keep working."""
    rng = random.Random(14)
    started = time.monotonic()
    count = 0
    statuses: collections.Counter[int] = collections.Counter()
    while count < FUZZ_CASES and time.monotonic() - started < FUZZ_SECONDS:
        raw = fuzz_request(rng)
        try:
            result = exchange(served.port, raw, half_close=True, timeout=REQUEST_TIMEOUT + 3,
                              head=is_head(raw))
        except Malformed as error:
            raise AssertionError(f"case {count} ({raw[:200]!r}): {error}") from None
        for response in result.responses:
            statuses[response.status] += 1
            if response.status < 300 and response.body:  # only ever a visible file's bytes
                assert any(response.body in data for data in VISIBLE), raw
        assert result.closed, f"case {count}: the connection stayed open after EOF"
        count += 1
        if count % 50 == 0:
            good_request(served)
    assert count >= 100, f"only {count} cases in {FUZZ_SECONDS} s"
    print(f"{count} cases in {time.monotonic() - started:.1f} s, answers: {dict(statuses)}")
    assert {200, 206, 400, 404, 416} <= set(statuses), statuses
    good_request(served)
    assert_clean_log(served)
