"""``hil lease status|take|release|break``: who drives a board, and handing it over.

Verbs that act on a board (power, flash, console, ssh, put, cycle, recover, deploy) take
its lease for their duration by themselves (`LEASED`; bench and nightly only when they drive
a shared board, not their private twin); these commands are for holding a board across
several commands (a debugging session) and for clearing a lease whose run died.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from hil.cli.context import Context
from hil.cli.options import add_actions, add_board, add_json
from hil.core.errors import HilError
from hil.lab import lease as L

# verb -> actions that only look (no lease needed). `bench` and `nightly` take the lease
# themselves, only when they drive a shared board (a private twin is theirs alone).
LEASED: dict[str, frozenset[str]] = {
    "power": frozenset({"status"}),
    "flash": frozenset(),
    "console": frozenset(),
    "ssh": frozenset(),
    "put": frozenset(),
    "recover": frozenset(),
    "deploy": frozenset(),
    "cycle": frozenset(),
}


def needs_lease(args: argparse.Namespace) -> bool:
    """Does this command act on a board (and so hold its lease while it runs)?"""
    looks = LEASED.get(getattr(args, "command", ""))
    return looks is not None and getattr(args, "action", None) not in looks


def register(sub: argparse._SubParsersAction) -> None:
    s = add_actions(sub, "lease", "who drives a board: status, take, release, break")
    st = s.add_parser("status", help="the board's lease: owner, host, pid, expiry, staleness")
    tk = s.add_parser("take", help="hold the board for later commands (prints the token to "
                      "export as HIL_LEASE=board:token)")
    tk.add_argument("--for", dest="ttl", type=_minutes, default="60", metavar="MIN",
                    help="expiry in minutes (default 60)")
    tk.add_argument("--purpose", default="hil lease take", help="shown to others")
    rl = s.add_parser("release", help="give back the lease this run holds (HIL_LEASE or "
                      "--token)")
    rl.add_argument("--token", help="the token 'take' printed (default: from HIL_LEASE)")
    br = s.add_parser("break", help="remove a stale lease (expired, or its owner is gone); "
                      "--force for a live one")
    br.add_argument("--force", action="store_true", help="break even a live lease")
    for p in (st, tk, rl, br):
        add_board(p)
        add_json(p)
    st.set_defaults(func=cmd_status)
    tk.set_defaults(func=cmd_take)
    rl.set_defaults(func=cmd_release)
    br.set_defaults(func=cmd_break)


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 minutes")
    return value * 60


def _view(lease: L.Lease | None, store: L.LeaseStore) -> dict[str, object]:
    if lease is None:
        return {"store": store.where, "held": False}
    return {"store": store.where, "held": True, "owner": lease.owner, "host": lease.host,
            "pid": lease.pid, "purpose": lease.purpose,
            "start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.start)),
            "expires": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.expires)),
            "stale": lease.stale_reason() or False}


def cmd_status(ctx: Context) -> int:
    board = ctx.board
    store = L.store_for(board)
    lease = store.read(board.name)
    text = (f"{board.name}: free ({store.where})" if lease is None else
            f"{board.name}: leased by {lease.describe()}"
            + (f"; stale: {lease.stale_reason()} (hil lease break)" if lease.stale_reason()
               else ""))
    ctx.emit(_view(lease, store), text)
    return 0


def cmd_take(ctx: Context) -> int:
    board = ctx.board
    store = L.store_for(board)
    # this process ends now: the lease belongs to the shell that ran us
    lease = L.take(store, dataclasses.replace(
        L.new_lease(board.name, ctx.args.ttl, ctx.args.purpose), pid=os.getppid()))
    ctx.emit({**_view(lease, store), "token": lease.token},
             f"{board.name}: leased to you until "
             f"{time.strftime('%H:%M', time.localtime(lease.expires))}\n"
             f"export {L.ENV}={board.name}:{lease.token}   # so later commands use it\n"
             f"hint: 'hil lease release --board {board.name}' when done")
    return 0


def cmd_release(ctx: Context) -> int:
    board = ctx.board
    token = ctx.args.token or L.inherited_token(board.name)
    if not token:
        raise HilError(f"no lease token for '{board.name}'",
                       f"pass --token, or export {L.ENV}=<board>:<token> as 'take' printed")
    store = L.store_for(board)
    if not store.release(board.name, token):
        current = store.read(board.name)
        raise HilError(f"'{board.name}' is not leased with that token"
                       + (f" (held by {current.describe()})" if current else " (it is free)"),
                       "only the run that took a lease releases it; see 'hil lease status'")
    ctx.emit({"released": True}, f"{board.name}: released")
    return 0


def cmd_break(ctx: Context) -> int:
    board = ctx.board
    store = L.store_for(board)
    lease = store.read(board.name)
    if lease is None:
        ctx.emit({"broken": False, "held": False}, f"{board.name}: free, nothing to break")
        return 0
    reason = lease.stale_reason()
    if reason is None and not ctx.args.force:
        raise L.LeaseHeld(f"'{board.name}' is leased by {lease.describe()}, which is live",
                          "wait for it; --force breaks it anyway (that run then loses the "
                          "board under its feet)")
    if not store.break_(lease):
        raise HilError(f"'{board.name}''s lease changed while breaking it",
                       "see 'hil lease status'")
    print(f"warning: broke {board.name}'s lease held by {lease.describe()}: "
          f"{reason or 'forced'}")
    ctx.emit({"broken": True, "was": _view(lease, store)}, f"{board.name}: free")
    return 0
