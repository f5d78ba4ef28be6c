"""The one way sonix runs external commands.

argv lists only (no shell), stdin from /dev/null unless input is given, check by default, the
command echoed with --debug, and on failure an error that carries a copy-pasteable command line.
Tests mock `run` and assert the exact argv.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

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
) -> subprocess.CompletedProcess[str]:
    """Run argv. `env` adds to the inherited environment. Raises SonixError on failure."""
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
        )
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
