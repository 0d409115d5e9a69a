"""Board leases: two runs never drive one board at the same time.

A lab board is driven from several hosts (the nightly runner, a laptop), so its lease must
live where every client of that board meets, not in a file on one client: for a real board
that is the PiKVM/RTE host that holds its SPI programmer (``flash.runs_on``), reached over
SSH; for a twin it is the twin's own state directory on the machine that runs it (every
client of a twin runs there). Both are driven through the same `hil.drivers.runner.Runner`, so the
lease logic is written once and tested against a real sshd.

Taking is atomic on any POSIX file system: the lease is written to a private temporary
file, then hard-linked to ``<dir>/<board>.lease``; ``link(2)`` fails if that name exists,
so of two racing runs exactly one wins, and the other reads the winner's record. A lease
records owner, host, pid, a random token, start and expiry. It is stale when it expired,
or when its owner ran on the asking host and that pid is gone; a stale lease can be broken
(with a warning), a live one only with ``--force``. Breaking renames the lease away first
(atomic) and checks that what it moved is the record it judged, so it never removes a lease
somebody took in the meantime.

A run that holds the lease passes it to its children in ``HIL_LEASE`` (``board:token``):
``hil nightly`` runs pytest, which runs verbs; they use the lease their run holds.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from hil.cache.keys import cache_root
from hil.core.errors import HilError
from hil.core.inventory import Board
from hil.drivers.runner import LocalRunner, Runner

log = logging.getLogger(__name__)

ENV = "HIL_LEASE"
REMOTE_DIR = "/var/lib/wpp-hil/leases"  # on the PiKVM/RTE host (writable; PiKVM: run `rw`)
DEFAULT_TTL_S = 3600.0
_TIMEOUT = 30.0


class LeaseHeld(HilError):
    """The board is leased by somebody else (exit code 1, with the owner named)."""


@dataclass(frozen=True)
class Lease:
    board: str
    owner: str
    host: str
    pid: int
    token: str
    start: float
    expires: float
    purpose: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Lease:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        left = self.expires - now
        when = (f"expires in {left / 60:.0f} min" if left > 0
                else f"expired {-left / 60:.0f} min ago")
        what = f" ({self.purpose})" if self.purpose else ""
        return f"{self.owner}@{self.host} pid {self.pid}{what}, {when}"

    def stale_reason(self, now: float | None = None, here: str | None = None) -> str | None:
        """Why this lease may be broken, or None while it is live."""
        now = time.time() if now is None else now
        if now >= self.expires:
            return "it expired"
        if self.host == (here or socket.gethostname()) and not _pid_alive(self.pid):
            return f"its owner (pid {self.pid} on this host) is gone"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# One small shell program per operation: the same text runs locally and over SSH.
_TAKE = r"""set -e
d=$1; name=$2; rec=$3
mkdir -p "$d"
t=$(mktemp "$d/.take.XXXXXX")
printf '%s\n' "$rec" > "$t"
if ln "$t" "$d/$name" 2>/dev/null; then rm -f "$t"; echo TAKEN
else rm -f "$t"; echo HELD; cat "$d/$name" 2>/dev/null || true; fi
"""
_READ = r"""cat "$1/$2" 2>/dev/null || true"""
_REMOVE_IF = r"""set -e
d=$1; name=$2; token=$3
if grep -q "\"token\": \"$token\"" "$d/$name" 2>/dev/null; then rm -f "$d/$name"; echo REMOVED
else echo NOT-OURS; cat "$d/$name" 2>/dev/null || true; fi
"""
_BREAK = r"""set -e
d=$1; name=$2; token=$3; aside="$d/.broken.$name.$(date +%s).$$"
mv "$d/$name" "$aside" 2>/dev/null || { echo GONE; exit 0; }
if grep -q "\"token\": \"$token\"" "$aside"; then echo BROKEN
else ln "$aside" "$d/$name" 2>/dev/null || true; echo CHANGED; fi
"""


class LeaseStore:
    """Leases of the boards whose clients meet on `runner`'s host, in `directory`."""

    def __init__(self, runner: Runner, directory: str) -> None:
        self.runner = runner
        self.directory = directory

    @property
    def where(self) -> str:
        return f"{self.runner.label}:{self.directory}"

    def _sh(self, script: str, *args: str) -> list[str]:
        res = self.runner.run(["sh", "-c", script, "lease", self.directory, *args], _TIMEOUT)
        if not res.ok:
            raise HilError(f"lease store {self.where}: {res.output.strip()[-300:] or 'failed'}",
                           "the directory must be writable there (on a PiKVM run 'rw' first)")
        return res.stdout.splitlines()

    @staticmethod
    def _name(board: str) -> str:
        return f"{board}.lease"

    def read(self, board: str) -> Lease | None:
        text = "\n".join(self._sh(_READ, self._name(board))).strip()
        return Lease.from_json(text) if text else None

    def try_take(self, lease: Lease) -> Lease | None:
        """Take `lease` atomically; None on success, else the lease that holds the board."""
        out = self._sh(_TAKE, self._name(lease.board), lease.to_json())
        if out and out[0] == "TAKEN":
            return None
        text = "\n".join(out[1:]).strip()
        if not text:  # released between our link and our read: the next try may win
            out = self._sh(_TAKE, self._name(lease.board), lease.to_json())
            if out and out[0] == "TAKEN":
                return None
            text = "\n".join(out[1:]).strip()
        if not text:
            raise HilError(f"could not take or read {lease.board}'s lease in {self.where}",
                           "try again")
        return Lease.from_json(text)

    def release(self, board: str, token: str) -> bool:
        out = self._sh(_REMOVE_IF, self._name(board), token)
        return bool(out) and out[0] == "REMOVED"

    def break_(self, held: Lease) -> bool:
        """Remove exactly `held` (not a lease taken since it was read)."""
        out = self._sh(_BREAK, self._name(held.board), held.token)
        return bool(out) and out[0] in ("BROKEN", "GONE")


def store_for(board: Board) -> LeaseStore:
    """Where this board's clients meet (module docstring)."""
    if board.emulated is not None:
        return LeaseStore(LocalRunner(), str(board.emulated.state_dir))
    host = board.flash.remote_host
    if host is None:
        # flashrom runs here: this host drives the board, its clients meet here
        return LeaseStore(LocalRunner(), str(cache_root() / "leases"))
    from hil.core.parts import flash_host_runner

    return LeaseStore(flash_host_runner(board), REMOTE_DIR)


def new_lease(board: str, ttl_s: float = DEFAULT_TTL_S, purpose: str = "") -> Lease:
    now = time.time()
    return Lease(board=board, owner=getpass.getuser(), host=socket.gethostname(),
                 pid=os.getpid(), token=secrets.token_hex(8), start=now, expires=now + ttl_s,
                 purpose=purpose)


def inherited_token(board: str) -> str | None:
    """The token of the lease our run holds on `board` (``HIL_LEASE``), if any."""
    value = os.environ.get(ENV, "")
    name, _, token = value.rpartition(":")
    return token if name == board and token else None


def take(store: LeaseStore, lease: Lease, *, break_stale: bool = True,
         force: bool = False) -> Lease:
    """Take the board's lease or raise `LeaseHeld` naming its owner."""
    for _ in range(3):
        held = store.try_take(lease)
        if held is None:
            return lease
        reason = held.stale_reason()
        if force or (break_stale and reason):
            log.warning("breaking the lease of %s held by %s: %s", held.board,
                        held.describe(), reason or "forced")
            print(f"warning: breaking {held.board}'s lease held by {held.describe()}: "
                  f"{reason or 'forced (--force)'}", flush=True)
            store.break_(held)
            continue
        raise LeaseHeld(f"board '{lease.board}' is leased by {held.describe()}",
                        f"wait for it, or 'hil lease break --board {lease.board}' once that "
                        "run is dead")
    raise LeaseHeld(f"board '{lease.board}': the lease changed hands while breaking it",
                    "another run is taking it right now; try again")


@contextlib.contextmanager
def held(board: Board, purpose: str, ttl_s: float = DEFAULT_TTL_S,
         store: LeaseStore | None = None) -> Iterator[Lease | None]:
    """Hold the board's lease for the block, unless our run already holds it.

    Children see ``HIL_LEASE`` and use the same lease. A lease we took is released at the
    end, even on errors.
    """
    store = store or store_for(board)
    token = inherited_token(board.name)
    if token is not None:
        current = store.read(board.name)
        if current is not None and current.token == token:
            yield current
            return
    lease = take(store, new_lease(board.name, ttl_s, purpose))
    previous = os.environ.get(ENV)
    os.environ[ENV] = f"{board.name}:{lease.token}"
    try:
        yield lease
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        store.release(board.name, lease.token)
