"""``hil cache status|prune|key``: what the build cache holds, removing what is no longer used.

Every source change leaves another kernel, ROM and initramfs in ~/.cache/wpp-hil and
nothing else removes them; ``prune`` keeps what the current tree uses plus the most
recently used few per kind (`hil.cache.prune`).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from typing import Any

from hil.build.versions import versions
from hil.cache.current import current_keys, inventory_dasharo_tags
from hil.cache.prune import DEFAULT_KEEP, RECENT_S, Decision, execute, plan
from hil.cache.usage import CurrentKeys, Entry, scan, twin_running
from hil.cli.context import Context
from hil.cli.options import add_actions, add_json
from hil.core.errors import HilError


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "cache", "build cache (~/.cache/wpp-hil): size per kind, prune")
    st = s.add_parser("status", help="size and entries per kind, which the current tree uses")
    add_json(st)
    st.set_defaults(func=cmd_status)
    pr = s.add_parser("prune", help="delete least recently used entries (never keys/, never a "
                      "running twin, never what the current tree uses)")
    pr.add_argument("--keep", type=_count, default=DEFAULT_KEEP, metavar="N",
                    help=f"old entries kept per kind besides the current one "
                    f"(default {DEFAULT_KEEP})")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    add_json(pr)
    pr.set_defaults(func=cmd_prune)
    ky = s.add_parser("key", help="one hash of every build key the current tree uses "
                      "(CI caches the build cache under it)")
    add_json(ky)
    ky.set_defaults(func=cmd_key)


def _current(ctx: Context) -> CurrentKeys:
    """The current keys, the board ROMs keyed by the inventory's Dasharo tags (an inventory
    that does not load leaves the build's default tag: the cache verbs need no inventory)."""
    try:
        tags = inventory_dasharo_tags(ctx.inventory)
    except HilError:
        return current_keys()
    return current_keys(dasharo_tags=tags)


def combined_key(names: dict[str, set[str]]) -> str:
    """One hash over every kind's current entry names (the build scripts' own keys)."""
    text = "\n".join(f"{kind}={name}" for kind in sorted(names) for name in sorted(names[kind]))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cmd_key(ctx: Context) -> int:
    current = _current(ctx)
    key = combined_key(current.names)
    if ctx.json:
        ctx.emit({"key": key, "kinds": {k: sorted(v) for k, v in current.names.items()},
                  "unknown": current.unknown})
    else:
        print(key)
    return 0


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _entry_json(e: Entry, decision: Decision | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": e.name, "path": str(e.path), "bytes": e.size,
                           "last_used": _when(e.last_used), "in_use": e.in_use or None}
    if decision is not None:
        out["delete"] = decision.delete
        out["why"] = decision.why
    return out


def cmd_status(ctx: Context) -> int:
    current = _current(ctx)
    usage = scan(current=current)
    p = plan(usage)
    if ctx.json:
        ctx.emit({
            "root": str(usage.root), "bytes": usage.total,
            "kinds": {k: [_entry_json(d.entry, d) for d in ds] for k, ds in p.decisions.items()},
            "fixed": [_entry_json(e) for e in usage.fixed],
            "current_unknown": usage.unknown,
            "prunable_bytes": p.freed,
            "versions": versions(usage.root),
        })
        return 0
    print(f"cache {usage.root}: {size(usage.total)} on disk")
    print(f"{'kind':<14}{'entries':>8}{'size':>11}  {'prune --keep ' + str(p.keep):<22}in use")
    for kind, ds in p.decisions.items():
        entries = [d.entry for d in ds]
        doomed = [d.entry for d in ds if d.delete]
        names = [e.name[:25] for e in entries if e.in_use]
        if kind in usage.unknown:
            names.append(f"? {usage.unknown[kind]}")
        elif kind in current.names and not names:
            names.append(f"not built yet: {', '.join(n[:25] for n in sorted(current.of(kind)))}")
        in_use = ", ".join(names) or "-"
        prunable = f"{len(doomed)} ({size(sum(e.size for e in doomed))})" if doomed else "-"
        print(f"{kind:<14}{len(entries):>8}{size(sum(e.size for e in entries)):>11}  "
              f"{prunable:<22}{in_use}")
    for e in usage.fixed:
        print(f"{'(fixed)':<14}{'':>8}{size(e.size):>11}  {'never':<22}"
              f"{e.path.relative_to(usage.root)}")
    print(f"prune would free {size(p.freed)} (hil cache prune --dry-run lists the entries)")
    print("versions the builds used (manifests) and the tools installed:")
    for name, ver in versions(usage.root).items():
        print(f"  {name:<28}{ver}")
    return 0


def _still_unused(e: Entry) -> bool:
    """A twin may have been started since the scan: ask again right before deleting."""
    return e.kind != "twins" or not twin_running(e.path)


def cmd_prune(ctx: Context) -> int:
    usage = scan(current=_current(ctx))
    p = plan(usage, ctx.args.keep)
    deleted = p.doomed if ctx.args.dry_run else execute(p, _still_unused)
    if ctx.json:
        ctx.emit({"root": str(usage.root), "dry_run": ctx.args.dry_run, "keep": p.keep,
                  "deleted": [_entry_json(e) | {"kind": e.kind} for e in deleted],
                  "freed_bytes": sum(e.size for e in deleted)})
        return 0
    verb = "would delete" if ctx.args.dry_run else "deleted"
    for e in deleted:
        print(f"{verb} {e.kind:<14}{e.name[:40]:<42}{size(e.size):>11}  "
              f"last used {_when(e.last_used)}")
    kept = sum(1 for ds in p.decisions.values() for d in ds if not d.delete)
    print(f"{verb} {len(deleted)} entries, {size(sum(e.size for e in deleted))}; kept {kept} "
          f"(current tree, {p.keep} most recently used per kind, running twins, anything "
          f"used in the last {RECENT_S // 60} min)")
    return 0
