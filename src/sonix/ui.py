"""Talking to people: nested timed steps on stderr, results on stdout, errors with hints.

Progress goes to stderr as `‣ Building initrd … 13.2s`, so that stdout carries only results
(paths, JSON) that scripts can use. `die()` raises `SonixError`; the CLI prints it without a
traceback unless `--debug` is given.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


class SonixError(Exception):
    """An error meant for a person: what is wrong, and a hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


def die(message: str, hint: str | None = None) -> SonixError:
    """Raise an error for a person. Returns the type so that `raise die(...)` reads well too."""
    raise SonixError(message, hint)


class _State:
    depth = 0
    debug = False


def set_debug(enabled: bool) -> None:
    _State.debug = enabled


def debug_enabled() -> bool:
    return _State.debug


def info(message: str) -> None:
    print(f"{'  ' * _State.depth}{message}", file=sys.stderr, flush=True)


def debug(message: str) -> None:
    if _State.debug:
        info(f"· {message}")


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """A nested, timed step: prints `‣ title` and, when it ends, `‣ title … 1.2s`."""
    indent = "  " * _State.depth
    print(f"{indent}‣ {title}", file=sys.stderr, flush=True)
    start = time.monotonic()
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        elapsed = time.monotonic() - start
        print(f"{indent}‣ {title} … {elapsed:.1f}s", file=sys.stderr, flush=True)
