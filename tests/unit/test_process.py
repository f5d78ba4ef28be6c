"""sonix.process: the timeout of `run`, and `spawn`/`stop` for long-lived children."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sonix import process, ui


def test_run_times_out_with_the_command_and_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(ui.SonixError) as error:
        process.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - start < 10
    assert str(error.value) == "command still running after 0.5s (killed): sleep 30"


def test_run_without_timeout_waits() -> None:
    assert process.run(["sh", "-c", "sleep 0.2; echo done"], capture=True).stdout == "done\n"


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_spawn_starts_a_session_and_stop_ends_the_whole_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The shell ignores SIGTERM; its child does not: stop() must escalate to SIGKILL, and
    # signals must reach the grandchild too.
    child = process.spawn(
        ["sh", "-c", f"trap '' TERM; sleep 60 & echo $! > {pids}; wait; sleep 60"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pids.read_text())
    assert os.getpgid(child.pid) == child.pid and os.getsid(child.pid) == child.pid
    assert os.getpgid(grandchild) == child.pid
    start = time.monotonic()
    status = process.stop(child, grace=0.5)
    assert status == -signal.SIGKILL  # the shell ignored SIGTERM
    assert time.monotonic() - start < 5
    assert _gone(grandchild)


def test_stop_with_a_grace_lets_the_child_exit_on_sigterm() -> None:
    child = process.spawn(["sleep", "60"])
    assert process.stop(child, grace=5) == -signal.SIGTERM


def test_stop_without_grace_kills_at_once_and_reaps_an_exited_child() -> None:
    child = process.spawn(["sleep", "60"])
    assert process.stop(child, grace=0) == -signal.SIGKILL
    done = process.spawn(["true"])
    done.wait()
    assert process.stop(done) == 0


def test_spawn_in_our_session_signals_the_child_only() -> None:
    child = process.spawn(["sleep", "60"], new_session=False)
    assert os.getsid(child.pid) == os.getsid(0)
    assert process.stop(child, grace=5) == -signal.SIGTERM


def test_spawn_of_a_missing_program_says_so() -> None:
    with pytest.raises(ui.SonixError, match="no-such-program-here was not found"):
        process.spawn(["no-such-program-here"])
