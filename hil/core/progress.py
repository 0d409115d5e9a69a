"""Progress lines for long work (builds, flashing, boot waits).

On a terminal the line is redrawn in place; otherwise (CI logs) each update is printed
at most every few seconds, so logs stay readable yet show that work is moving.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A single status line: ``[label] message (elapsed)``; `done()` finishes it."""

    def __init__(self, label: str, stream: TextIO | None = None, min_interval: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.min_interval = min_interval
        self._last = 0.0
        self._last_msg = ""

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.start:5.1f}s"

    def update(self, message: str, fraction: float | None = None) -> None:
        now = time.monotonic()
        pct = f" {fraction * 100:3.0f}%" if fraction is not None else ""
        text = f"[{self.label}]{pct} {message} ({self._elapsed()})"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        elif (message != self._last_msg and now - self._last >= 1.0) or (
            now - self._last >= self.min_interval
        ):
            # Logs (CI): a new message at most once a second, a heartbeat every interval.
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last = now
        self._last_msg = message

    def done(self, message: str = "done") -> None:
        text = f"[{self.label}] {message} ({self._elapsed()})"
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()
