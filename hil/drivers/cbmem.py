"""Parse the firmware console (`cbmem -c`) into boots and structured ``wpp:`` events.

The WPP firmware reports what it did (save, restore, timings) as one console line per
event: ``wpp: <event> key=value key=value ...``. Tests assert on these events, so the
parser is strict where a silent mistake would hide a firmware bug: a line that starts
with ``wpp:`` but does not follow the format is reported in `CbmemLog.malformed` with
its line number instead of being dropped. Unknown keys are kept as they are, so firmware
can add fields without breaking the bench.

Values that look like integers (``123``, ``-4``, ``0x1f``) become ``int``; everything
else stays ``str``. Durations and timestamps are integers with the unit in the key name
(``time_us=1234``).

The CBMEM console keeps several boots (warm resets append). A boot starts at a stage
banner (``coreboot-... bootblock starting``) that does not come later in boot order than
the previous banner: ``bootblock`` after ``ramstage``, or ``romstage`` after ``ramstage`` on
boards without a bootblock console. ``smm`` banners never start a boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from hil.core.errors import HilError
from hil.drivers.runner import CommandResult

# coreboot 4.x: "coreboot-4.15-... Mon Jan 1 00:00:00 UTC 2024 bootblock starting (log level: 7)..."
# Dasharo / newer: "[NOTE ]  coreboot-v1.1.0 ... x86_64 romstage starting (log level: 7)..."
_BANNER = re.compile(
    r"coreboot-\S+.*?\s(decompressor|bootblock|verstage-before-bootblock|verstage|romstage"
    r"|postcar|ramstage|smm|rmodule|libagesa)\s+starting\b"
)
# Boot order of the stages; a banner not later than the previous one starts a new boot.
# smm/rmodule/libagesa banners can appear at any time and never start a boot.
_STAGE_ORDER = {"decompressor": 0, "verstage-before-bootblock": 1, "bootblock": 2,
                "verstage": 3, "romstage": 4, "postcar": 5, "ramstage": 6}
_FIRST = _STAGE_ORDER["bootblock"]  # banners up to here only appear at the start of a boot

# Newer coreboot prefixes console lines with the log level, e.g. "[INFO ]  ".
_LEVEL_PREFIX = r"(?:\[[A-Z]+\s*\]\s*)?"
_WPP = re.compile(r"^\s*" + _LEVEL_PREFIX + r"wpp:(.*)$")
_EVENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_INT = re.compile(r"^[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)$")

Value = int | str


@dataclass(frozen=True)
class WppEvent:
    """One ``wpp:`` line. `line_no` is 1-based in the whole log; `boot` indexes `boots`."""

    name: str
    fields: dict[str, Value]
    line_no: int
    boot: int
    raw: str

    def __getitem__(self, key: str) -> Value:
        return self.fields[key]

    def get(self, key: str, default: Value | None = None) -> Value | None:
        return self.fields.get(key, default)

    def as_dict(self) -> dict[str, Value]:
        """JSON-friendly form (for ``hil logs cbmem --wpp --json``)."""
        return {"event": self.name, "boot": self.boot, "line": self.line_no, **self.fields}


@dataclass(frozen=True)
class Malformed:
    """A ``wpp:`` line that does not follow the format, and why."""

    line_no: int
    raw: str
    reason: str


@dataclass
class Boot:
    """Lines [start_line, end_line] (1-based, inclusive) of one boot in the log."""

    index: int
    start_line: int
    end_line: int
    text: str
    events: list[WppEvent] = field(default_factory=list)


@dataclass
class CbmemLog:
    raw: str
    boots: list[Boot]
    events: list[WppEvent]
    malformed: list[Malformed]

    @property
    def last_boot(self) -> Boot | None:
        return self.boots[-1] if self.boots else None

    def last_boot_events(self) -> list[WppEvent]:
        return list(self.boots[-1].events) if self.boots else []

    def named(self, name: str, boot: int | None = None) -> list[WppEvent]:
        """Events called `name`, optionally only those of boot index `boot` (-1 = last)."""
        if boot is not None and self.boots:
            boot = boot % len(self.boots)
        return [e for e in self.events if e.name == name and (boot is None or e.boot == boot)]


def parse_value(text: str) -> Value:
    return int(text, 0) if _INT.match(text) and not re.match(r"^[+-]?0\d", text) else text


def parse_wpp_line(body: str) -> tuple[str, dict[str, Value]]:
    """Parse what follows ``wpp:``; raise ValueError with the reason if malformed."""
    tokens = body.split()
    if not tokens:
        raise ValueError("no event name after 'wpp:'")
    name, *pairs = tokens
    if "=" in name or not _EVENT_NAME.match(name):
        raise ValueError(f"bad event name '{name}'")
    fields: dict[str, Value] = {}
    for tok in pairs:
        key, sep, value = tok.partition("=")
        if not sep:
            raise ValueError(f"token '{tok}' is not key=value")
        if not _KEY.match(key):
            raise ValueError(f"bad key in '{tok}'")
        if value == "":
            raise ValueError(f"key '{key}' has no value")
        if key in fields:
            raise ValueError(f"duplicate key '{key}'")
        fields[key] = parse_value(value)
    return name, fields


def _split_boots(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) 0-based inclusive line ranges, one per boot."""
    starts: list[int] = []
    prev_order: int | None = None
    for i, line in enumerate(lines):
        m = _BANNER.search(line)
        if not m:
            continue
        stage = m.group(1)
        if stage not in _STAGE_ORDER:
            continue
        order = _STAGE_ORDER[stage]
        if not starts or (prev_order is not None and order <= prev_order):
            starts.append(i)
        prev_order = order
    if not starts:
        return [(0, len(lines) - 1)] if lines else []
    if starts[0] != 0:
        # Text before the first banner is the tail of an older boot (the buffer wrapped)
        # when that banner opens a boot; otherwise it is the start of the same boot.
        first_stage = _BANNER.search(lines[starts[0]])
        opens_boot = first_stage is not None and _STAGE_ORDER[first_stage.group(1)] <= _FIRST
        if opens_boot and any(line.strip() for line in lines[:starts[0]]):
            starts.insert(0, 0)
        else:
            starts[0] = 0
    ends = [s - 1 for s in starts[1:]] + [len(lines) - 1]
    return list(zip(starts, ends, strict=True))


def parse_log(text: str) -> CbmemLog:
    """Split `text` (the output of ``cbmem -c``) into boots, events and malformed lines."""
    lines = text.splitlines()
    ranges = _split_boots(lines)
    boots = [Boot(i, s + 1, e + 1, "\n".join(lines[s:e + 1])) for i, (s, e) in enumerate(ranges)]
    boot_of_line: list[int] = []
    for b in boots:
        boot_of_line += [b.index] * (b.end_line - b.start_line + 1)
    events: list[WppEvent] = []
    malformed: list[Malformed] = []
    for i, line in enumerate(lines):
        m = _WPP.match(line)
        if not m:
            continue
        try:
            name, fields = parse_wpp_line(m.group(1))
        except ValueError as exc:
            malformed.append(Malformed(i + 1, line, str(exc)))
            continue
        ev = WppEvent(name, fields, i + 1, boot_of_line[i] if boot_of_line else 0, line)
        events.append(ev)
        if boots:
            boots[ev.boot].events.append(ev)
    return CbmemLog(text, boots, events, malformed)


class CommandRunner(Protocol):
    def run(self, command: str, timeout: float = ..., check: bool = ...) -> CommandResult: ...


def read_cbmem(
    shell: CommandRunner, last_boot: bool = False, cbmem: str = "cbmem", timeout: float = 60
) -> CbmemLog:
    """Run ``cbmem -c`` (or ``-1``: last boot only) through `shell` and parse the output."""
    cmd = f"{cbmem} {'-1' if last_boot else '-c'}"
    res = shell.run(cmd, timeout=timeout, check=False)
    if res.exit_code == 127 or ("not found" in res.stderr and not res.stdout):
        raise HilError(f"'{cbmem}' is not installed on the target",
                       "install cbmem in the target image (built from coreboot's util/cbmem)")
    if not res.ok:
        detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
        raise HilError(f"'{cmd}' failed with exit code {res.exit_code}: {detail[0]}",
                       "cbmem needs root and /dev/mem access (or the coreboot table driver)")
    return parse_log(res.stdout)
