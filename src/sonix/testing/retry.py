"""The one waiting primitive: every `wait_for_*` of the driver is `retry` around a check."""

from __future__ import annotations

import time
from collections.abc import Callable


class WaitTimeout(AssertionError):
    """A condition the test waited for did not hold in time (a test failure, not a VM failure)."""


def retry(
    check: Callable[[bool], bool],
    timeout: float,
    *,
    what: str = "condition",
    initial_delay: float = 0.2,
    max_delay: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call `check(last_try)` until it returns True, for at most `timeout` seconds.

    `last_try` is True on the final call, so a check can log details only when it matters.
    Delays between calls grow from `initial_delay` to `max_delay` (quick when the condition
    holds soon, cheap under TCG when it takes a minute). Exceptions from `check` propagate:
    a crashed VM (MachineError) ends the wait at once instead of after the timeout.
    Raises WaitTimeout when the time is up.
    """
    deadline = clock() + timeout
    delay = initial_delay
    while True:
        last_try = clock() + delay >= deadline
        if check(last_try):
            return
        if last_try:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        sleep(delay)
        delay = min(delay * 1.5, max_delay)
