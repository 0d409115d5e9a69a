"""kvmd's ATX buttons, written once for the twin's backend and the simulated board.

What kvmd's GPIO ATX plugin does, and so what a client of the lab board meets:

* the power button (short and long press) and the reset button are two separate
  exclusive regions: a press of a busy button is refused with ``AtxIsBusyError`` (409),
  while the other button can still be pressed;
* a press holds the button for its delay (kvmd: 0.1 s, long 5.5 s), releases it, and
  keeps the region busy for another second, so quick repeats are refused;
* ``GET /api/atx`` says ``busy`` (either region) and ``acts`` (each region).

A backend supplies what a press does to its board (`effect`, run at the release, as a
real board reacts when the button comes up); this class owns the busy rules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hil.emulated.kvmd.server import KvmdBusyError, perform_op

KVMD_SETTLE_S = 1.0  # kvmd keeps a button's region busy this long after releasing it
REGIONS = ("power", "reset")


def region_of(button: str) -> str:
    """The region a button press holds: power and power_long share the power button."""
    return "reset" if button == "reset" else "power"


class AtxButtons:
    """Busy regions of the two front-panel buttons; thread-safe."""

    def __init__(self, settle_s: float = KVMD_SETTLE_S,
                 lock: threading.RLock | None = None) -> None:
        self.settle_s = settle_s
        self._lock = lock or threading.RLock()
        self._busy: set[str] = set()

    def acts(self) -> dict[str, bool]:
        """Which regions are busy (kvmd's ``acts``)."""
        with self._lock:
            return {r: r in self._busy for r in REGIONS}

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._busy)

    def claim(self, button: str) -> None:
        """Take the button's region, or refuse as kvmd does while it is held."""
        with self._lock:
            region = region_of(button)
            if region in self._busy:
                raise KvmdBusyError("performing another ATX operation", "AtxIsBusyError")
            self._busy.add(region)

    def press(self, button: str, duration: float, effect: Callable[[], None],
              wait: bool) -> None:
        """Press a claimed button for `duration`, run `effect` at the release, then hold the
        region `settle_s` longer. With `wait` false it runs in the background (kvmd's
        ``wait=0``); the region is released even when `effect` fails."""

        def work() -> None:
            try:
                time.sleep(duration)
                effect()
            finally:
                try:
                    time.sleep(self.settle_s)
                finally:
                    with self._lock:
                        self._busy.discard(region_of(button))

        perform_op(work, wait, f"atx-{button}")
