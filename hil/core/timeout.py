"""One deadline helper used everywhere instead of ad-hoc sleeps.

Waiting code asks a `Deadline` how much time is left, instead of sleeping fixed amounts,
so nested waits (boot -> banner -> SSH) share one budget and a timeout error always says
what was being waited for and for how long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hil.core.errors import TimeoutExpired

T = TypeVar("T")


class Deadline:
    """A point in monotonic time; `remaining` never goes below zero."""

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("deadline must not be negative")
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def sleep(self, seconds: float) -> None:
        """Sleep at most `seconds`, never past the deadline."""
        time.sleep(min(seconds, self.remaining))

    def child(self, seconds: float) -> Deadline:
        """A deadline of at most `seconds` that never outlives this one."""
        return Deadline(min(seconds, self.remaining))


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    max_interval: float = 2.0,
) -> T:
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass.

    The polling interval backs off from `interval` to `max_interval`. On timeout a
    `TimeoutExpired` names `what` was awaited and for how long.
    """
    deadline = Deadline(timeout)
    delay = interval
    while True:
        result = predicate()
        if result:
            return result
        if deadline.expired:
            raise TimeoutExpired(f"timed out after {timeout:.0f} s waiting for {what}")
        deadline.sleep(delay)
        delay = min(delay * 1.5, max_interval)
