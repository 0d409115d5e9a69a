"""Which build-cache entries to delete, and deleting them (``hil cache prune``).

Every source change leaves another kernel, ROM and initramfs behind, and nothing else
ever removes them. Per kind this keeps what the current tree uses, plus the `keep` most
recently used others (so switching back a commit or two stays warm), and deletes the
rest, least recently used first. Never deleted: the ``keys/`` folder and other fixed
parts, a running twin's state, and anything touched in the last `RECENT_S` seconds (a
build or test of another checkout may be using it right now). Where the current key of
a kind is unknown, its newest entry stands in for it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hil.cache.usage import CacheUsage, Entry
from hil.core.errors import HilError

DEFAULT_KEEP = 2
RECENT_S = 15 * 60


@dataclass(frozen=True)
class Decision:
    entry: Entry
    delete: bool
    why: str


def select(entries: list[Entry], keep: int, *, now: float, current_known: bool = True,
           recent_s: float = RECENT_S) -> list[Decision]:
    """Decide for the entries of one kind: keep or delete, and why.

    In-use entries always stay and do not count against `keep`; of the others the `keep`
    most recently used stay. Where (part of) the current key is unknown, the newest entry
    not in use also stays, as its stand-in.
    """
    if keep < 0:
        raise HilError(f"--keep {keep} is negative", "give how many old entries to keep, >= 0")
    decisions = []
    kept_old = 0
    stand_in = not current_known
    for e in sorted(entries, key=lambda e: e.last_used, reverse=True):
        if e.in_use:
            decisions.append(Decision(e, False, e.in_use))
        elif stand_in:
            stand_in = False
            decisions.append(Decision(e, False, "newest (current key unknown)"))
        elif kept_old < keep:
            kept_old += 1
            decisions.append(Decision(e, False, f"{kept_old}. most recently used"))
        elif now - e.last_used < recent_s:
            decisions.append(Decision(e, False, "used in the last "
                                      f"{recent_s / 60:.0f} min"))
        else:
            decisions.append(Decision(e, True, "least recently used"))
    return decisions


def select_partial(entries: list[Entry], *, now: float,
                   recent_s: float = RECENT_S) -> list[Decision]:
    """Leftovers of interrupted builds go, unless a build may still be writing them."""
    return [Decision(e, False, "a build may be writing it") if now - e.last_used < recent_s
            else Decision(e, True, "left by an interrupted build") for e in entries]


@dataclass
class PrunePlan:
    usage: CacheUsage
    keep: int
    decisions: dict[str, list[Decision]] = field(default_factory=dict)  # kind -> decisions

    @property
    def doomed(self) -> list[Entry]:
        return [d.entry for ds in self.decisions.values() for d in ds if d.delete]

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.doomed)


def plan(usage: CacheUsage, keep: int = DEFAULT_KEEP, *, now: float | None = None,
         recent_s: float = RECENT_S) -> PrunePlan:
    now = time.time() if now is None else now
    p = PrunePlan(usage, keep)
    for kind, entries in usage.entries.items():
        p.decisions[kind] = select(entries, keep, now=now, recent_s=recent_s,
                                   current_known=kind == "twins" or kind not in usage.unknown)
    p.decisions["partial"] = select_partial(usage.partial, now=now, recent_s=recent_s)
    return p


def execute(p: PrunePlan, still_unused: Callable[[Entry], bool] = lambda _e: True) -> list[Entry]:
    """Delete the plan's doomed entries; returns those deleted.

    `still_unused` is asked right before each deletion (a twin may have started since
    the scan). Paths outside the cache root's kind folders, or in ``keys/``, are refused.
    """
    root = p.usage.root.resolve()
    deleted = []
    for e in p.doomed:
        path = e.path.resolve()
        rel = path.relative_to(root) if path.is_relative_to(root) else None
        if rel is None or len(rel.parts) < 2 or rel.parts[0] == "keys":
            raise HilError(f"refusing to delete {path}: not a cache entry under {root}",
                           "this is a bug in hil.cache.usage; nothing was deleted after it")
        if not still_unused(e):
            continue
        try:
            shutil.rmtree(path)
        except OSError as err:
            raise HilError(f"cannot delete cache entry {path}: {err.strerror}",
                           "check its permissions; entries deleted before it stay deleted"
                           ) from None
        deleted.append(e)
    return deleted
