"""A throwaway etcd on loopback, for tests and for trying `sonix fleetlock-server` by hand.

    from sonix.testing.etcd import etcd_server

    with etcd_server() as url:          # "http://127.0.0.1:<free port>", data in a temp dir
        ...

    .venv/bin/python -m sonix.testing.etcd     # runs one until Ctrl-C, prints its URL

etcd comes from the locked `testing` package set (pkgs/packages.toml), built with Nix. Debian's
etcd is linked against trixie's libc, so it runs through the tree's own dynamic loader (no
namespace needed, and signals reach etcd itself). The server listens on free loopback ports,
keeps its data in a directory of its own, runs without fsync (test data need not survive a
power cut, only a restart), and dies with the process that started it.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sonix import nix, paths, process, ui
from sonix.debian.trees import tree_command
from sonix.fleetlock.etcd import EtcdClient, EtcdError
from sonix.testing.retry import WaitTimeout, retry

START_TIMEOUT = 30.0


class EtcdFailed(RuntimeError):
    """etcd did not start (an infrastructure failure, not a test assertion)."""


@functools.cache
def etcd_tree() -> Path:
    """The `testing` package set's tree (etcd, etcdctl), built once; a GC root in .sonix/."""
    [tree] = nix.build(
        paths.source_root() / "pkgs", "usrTree",
        args={"name": "sonix-testing"},
        exprs={"packages": "(import ./pkgs { }).sets.testing"},
        out_link=paths.state_dir() / "testing" / "sonix-testing",
        what="the testing package set (etcd)",
    )
    return tree


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports on 127.0.0.1 that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether etcd at `url` answers /health with a leader."""
    try:
        EtcdClient([url], timeout=timeout).health()
    except EtcdError:
        return False
    return True


class EtcdServer:
    """One etcd member, alone in its cluster, on loopback.

    `state_dir` keeps `data/` (etcd's data) and `etcd.log` (its output). `start()` and `stop()`
    may be called again: a restarted server keeps its data and its ports when they are free.
    """

    def __init__(self, state_dir: Path, *, tree: Path | None = None) -> None:
        self.state_dir = state_dir
        self.data_dir = state_dir / "data"
        self.log = state_dir / "etcd.log"
        self._tree = tree
        self._process: process.Child | None = None
        self._ports: tuple[int, int] | None = None

    @property
    def url(self) -> str:
        """The client URL, e.g. `http://127.0.0.1:41234` (only once started)."""
        if self._ports is None:
            raise EtcdFailed("etcd has not been started")
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start etcd and wait until it is healthy; returns the client URL."""
        if self.running:
            return self.url
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tree = self._tree or etcd_tree()
        # A free port can be taken by someone else before etcd binds it: then etcd exits at
        # once and the next attempt uses new ports.
        for attempt in range(3):
            if self._ports is None or attempt > 0:
                client, peer = free_ports(2)
                self._ports = (client, peer)
            if self._launch(tree, timeout):
                return self.url
        raise EtcdFailed(f"etcd exited at start three times:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop etcd (SIGTERM, then SIGKILL after 10 s). Its data stays."""
        child, self._process = self._process, None
        if child is not None:
            process.stop(child, grace=10)

    def wait(self) -> int:
        """Wait until etcd exits (by itself or by a signal); its exit status."""
        if self._process is None:
            raise EtcdFailed("etcd has not been started")
        return self._process.wait()

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, tree: Path, timeout: float) -> bool:
        """Start etcd once; True when healthy, False when it exited early (port taken)."""
        assert self._ports is not None
        client, peer = (f"http://127.0.0.1:{port}" for port in self._ports)
        argv = [
            *tree_command(tree, "etcd"),
            "--name", "sonix-test",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"sonix-test={peer}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ]
        with open(self.log, "ab") as log:
            self._process = process.spawn(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.state_dir
            )
        child = self._process

        def up(last_try: bool) -> bool:
            if child.poll() is not None:
                raise EtcdFailed(f"etcd exited with status {child.returncode}")
            return healthy(client, timeout=1.0)

        try:
            retry(up, timeout, what=f"etcd at {client}", initial_delay=0.05, max_delay=0.5)
        except EtcdFailed:
            self._process = None
            return False
        except WaitTimeout:
            self.stop()
            raise EtcdFailed(
                f"etcd at {client} was not healthy after {timeout:.0f}s:\n{self._log_tail()}"
            ) from None
        return True

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def etcd_server(state_dir: Path | None = None, *, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Run etcd for the duration of a `with` block and give its client URL.

    Without `state_dir`, the data lives in a temporary directory removed afterwards. For
    restarts of etcd itself, use EtcdServer directly.
    """
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="etcd-")))
        server = EtcdServer(state_dir)
        server.start(timeout)
        stack.callback(server.stop)
        yield server.url


def main() -> int:
    """Run a throwaway etcd until Ctrl-C or SIGTERM; its URL on stdout."""
    # Also when started in the background by a shell, which would have SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    state = Path(tempfile.mkdtemp(prefix="sonix-etcd-"))
    try:
        with EtcdServer(state) as server:
            print(server.url, flush=True)
            ui.info(f"etcd {server.url}, data in {server.data_dir} (removed at exit)")
            ui.info("Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                server.wait()
    except (EtcdFailed, ui.SonixError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
