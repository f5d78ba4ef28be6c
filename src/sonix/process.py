"""The one way sonix runs external commands.

- `run()`: a command that sonix waits for. argv lists only (no shell), stdin from /dev/null
  unless input is given, check by default, an optional timeout, the command echoed with
  --debug, and on failure an error that carries a copy-pasteable command line. Tests mock
  `run` and assert the exact argv.
- `spawn()`: a long-lived child (QEMU, etcd) that runs beside sonix. It starts in a session
  (process group) of its own, so that signals reach the whole tree it starts, and the kernel
  kills it when sonix dies. `stop()` ends one with a deadline: SIGTERM, wait, SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from sonix import ui


def command_line(
    argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> str:
    """The command as a person would paste it into a shell."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    cmd = shlex.join(os.fspath(a) for a in argv)
    return f"{prefix} {cmd}" if prefix else cmd


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    capture: bool = False,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    hint: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv. `env` adds to the inherited environment. Raises SonixError on failure, and
    when the command is still running after `timeout` s (it is killed then)."""
    args = [os.fspath(a) for a in argv]
    ui.debug(command_line(args, env))
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        result = subprocess.run(
            args,
            check=False,
            text=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ui.SonixError(
            f"command still running after {timeout:g}s (killed): {command_line(args, env)}", hint
        ) from None
    except FileNotFoundError:
        raise ui.die(
            f"{args[0]} was not found", hint or "run ./sonix once: it installs the host tools"
        ) from None
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip() if capture else ""
        message = f"command failed with exit status {result.returncode}: {command_line(args, env)}"
        if detail:
            message += "\n" + detail
        raise ui.SonixError(message, hint)
    return result


def die_with_parent() -> None:
    """`preexec_fn` of spawned children: the kernel kills the child when the process that
    started it dies.

    Without this, a test run that is killed (a CI timeout, `kill -9`) leaves its VMs running
    with nobody to stop them. PR_SET_PDEATHSIG fires when the *thread* that started the child
    ends, so start children from a thread that lives as long as they do (the main thread).
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Child(subprocess.Popen[bytes]):
    """A spawned child. When it leads a session of its own, `terminate()` and `kill()` (and
    `send_signal()`) signal its whole process group, so nothing it started is left over."""

    own_group = False

    def send_signal(self, sig: int) -> None:
        self.poll()  # reaps it: a reaped child's id (and group id) may belong to another
        if not self.own_group or self.returncode is not None:
            super().send_signal(sig)
            return
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.pid, sig)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    cwd: Path | None = None,
    new_session: bool = True,
) -> Child:
    """Start a long-lived child and return at once. stdin is /dev/null unless given (None:
    inherited); stdout and stderr are inherited unless given (a file, `subprocess.PIPE`,
    `subprocess.STDOUT`). The child dies with the thread that started it (die_with_parent).

    `new_session=False` keeps it in our session: only for a child that owns this terminal
    (the interactive QEMU reads its serial console from it). End it with `stop()`.
    """
    args = [os.fspath(a) for a in argv]
    ui.debug(command_line(args))
    try:
        child = Child(
            args, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
            start_new_session=new_session, preexec_fn=die_with_parent,
        )
    except FileNotFoundError:
        raise ui.die(
            f"{args[0]} was not found", "run ./sonix once: it installs the host tools"
        ) from None
    child.own_group = new_session
    return child


class Stoppable(Protocol):
    """What `stop()` needs of a child (a `Child`, or a stand-in in unit tests)."""

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def stop(child: Stoppable, grace: float = 10.0) -> int:
    """End `child` and return its exit status: SIGTERM, up to `grace` s for it to exit,
    then SIGKILL (at once when `grace` is 0: a power failure, not a shutdown). A child that
    has exited already is only reaped."""
    if child.poll() is None:
        if grace > 0:
            child.terminate()
            try:
                return child.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        child.kill()
    return child.wait()
