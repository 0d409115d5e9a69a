"""`hil cache status|prune` on a temporary cache ($WPP_HIL_CACHE): what is kept, what goes.

The selection is pure logic over entries; the scan, the deletion and the CLI run on real
folders under tmp_path. The keys come from the build scripts' own hash modes, which the
tests run for real to show they build, download and write nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.cache import current as cache_current
from hil.cache.prune import execute, plan, select
from hil.cache.usage import CurrentKeys, Entry, entry_of, mark_used, scan
from hil.cli import cache_cmd
from hil.cli.main import main
from hil.core.errors import HilError
from hil.core.runs import REPO_ROOT

NOW = 2_000_000_000.0
HOUR = 3600.0


def entry(name: str, hours_ago: float, in_use: str = "") -> Entry:
    return Entry("kernel", Path("/c/kernel/out") / name, 100, NOW - hours_ago * HOUR, in_use)


def deleted(decisions: list) -> list[str]:
    return [d.entry.name for d in decisions if d.delete]


# -- selection -------------------------------------------------------------------------


def test_keeps_current_plus_n_most_recently_used() -> None:
    es = [entry("a", 5), entry("cur", 9, "current tree"), entry("b", 1), entry("c", 3),
          entry("d", 7)]
    ds = select(es, 2, now=NOW)
    assert deleted(ds) == ["a", "d"]  # least recently used last
    assert {d.entry.name: d.why for d in ds if not d.delete} == {
        "b": "1. most recently used", "c": "2. most recently used", "cur": "current tree"}


def test_keep_zero_leaves_only_what_is_in_use() -> None:
    es = [entry("a", 5), entry("cur", 9, "current tree"), entry("b", 1)]
    assert sorted(deleted(select(es, 0, now=NOW))) == ["a", "b"]


def test_recently_touched_entries_stay_beyond_keep() -> None:
    # another checkout's build may be using an entry right now
    es = [entry("a", 0.1), entry("b", 0.2), entry("old", 30)]
    assert deleted(select(es, 0, now=NOW)) == ["old"]
    assert deleted(select(es, 0, now=NOW, recent_s=60)) == ["a", "b", "old"]


def test_unknown_current_key_protects_the_newest() -> None:
    es = [entry("x", 4), entry("y", 2), entry("z", 8)]
    assert deleted(select(es, 0, now=NOW, current_known=False)) == ["x", "z"]
    assert deleted(select(es, 0, now=NOW, current_known=True)) == ["y", "x", "z"]
    # part of the key known (the payload-less ROM), the twin ROM's not: newest other stays
    es.append(entry("nopayload", 9, "current tree"))
    assert deleted(select(es, 0, now=NOW, current_known=False)) == ["x", "z"]


def test_negative_keep_is_refused() -> None:
    with pytest.raises(HilError, match="negative"):
        select([entry("a", 5)], -1, now=NOW)


# -- a real cache folder ---------------------------------------------------------------

K1, K2, K3, K4 = (f"emulated-{c * 16}" for c in "1234")
R1, R2 = "a" * 16, "b" * 16
F1, F2, F3 = "1" * 64, "2" * 64, "3" * 64


def make(root: Path, rel: str, hours_ago: float, size: int = 1000) -> Path:
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "artifact").write_bytes(b"x" * size)
    t = time.time() - hours_ago * HOUR
    os.utime(d / "artifact", (t, t))
    os.utime(d, (t, t))
    return d


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("WPP_HIL_CACHE", str(root))
    for i, name in enumerate((K1, K2, K3, K4)):
        make(root, f"kernel/out/{name}", 10 + i)  # K1 newest
    make(root, "kernel/out/board-" + "9" * 16, 50)
    make(root, "kernel/src/6.1.192-2", 100)
    make(root, "kernel/work-emulated", 0.5)
    for i, name in enumerate((F1, F2, F3)):
        make(root, f"firmware/{name}", 10 + i)
    make(root, f"firmware/base/{F1}", 10)
    make(root, "firmware/work/" + F2, 20)  # an interrupted base build
    make(root, f"firmware/{F3}.tmp.123", 0.1)  # a ROM being written right now
    make(root, f"rootfs/{R1}", 30)
    make(root, f"rootfs/{R2}", 20)
    make(root, "rootfs/cbmem-" + "c" * 16, 90)
    make(root, "coreboot-src/4.15~dfsg-3", 100)
    make(root, "firmware/board/msi_ms7d25_v1.1.3", 60)
    make(root, "kernel/board-cache", 60)
    make(root, "keys", 200)
    make(root, "twins/running", 40)
    make(root, "twins/stopped", 40)
    return root


def current() -> CurrentKeys:
    keys = CurrentKeys()
    keys.add("kernel", K4)  # the oldest emulated kernel is the current tree's
    keys.add("rootfs", R1)
    keys.add("firmware-base", F1)
    keys.add("coreboot-src", "4.15~dfsg-3")
    keys.add("kernel-src", "6.1.192-2")
    keys.unknown["firmware"] = "not built"
    keys.unknown["cbmem"] = "no key"
    return keys


def running(path: Path) -> bool:
    return path.name == "running"


def rels(root: Path, entries: list[Entry]) -> set[str]:
    return {str(e.path.relative_to(root)) for e in entries}


def test_scan_finds_every_kind_and_what_is_in_use(cache: Path) -> None:
    usage = scan(current=current(), twin_running=running)
    kinds = {k: [e.name for e in es] for k, es in usage.entries.items()}
    assert kinds["kernel"] == [K1, K2, K3, K4, "board-" + "9" * 16]  # newest first
    assert kinds["firmware"] == [F1, F2, F3]  # the .tmp.123 folder is partial, not a ROM
    assert kinds["cbmem"] == ["cbmem-" + "c" * 16] and kinds["rootfs"] == [R2, R1]
    in_use = {e.name: e.in_use for es in usage.entries.values() for e in es if e.in_use}
    assert in_use == {K4: "current tree", R1: "current tree", F1: "current tree",
                      "4.15~dfsg-3": "current tree", "6.1.192-2": "current tree",
                      "running": "running twin"}
    assert rels(cache, usage.partial) == {"firmware/work/" + F2, f"firmware/{F3}.tmp.123"}
    assert rels(cache, usage.fixed) == {"keys", "kernel/work-emulated", "kernel/board-cache"}
    assert kinds["firmware-board"] == ["msi_ms7d25_v1.1.3"] and kinds["dasharo"] == []
    assert all(e.size >= 1000 for e in usage.all_entries())


def test_prune_deletes_exactly_the_least_recently_used(cache: Path) -> None:
    p = plan(scan(current=current(), twin_running=running), keep=1)
    expected = {f"kernel/out/{K2}", f"kernel/out/{K3}", "kernel/out/board-" + "9" * 16,
                f"firmware/{F3}", "firmware/work/" + F2}
    # kernel: K4 current + K1 newest stay; firmware: unknown key -> F1 stands in, F2 kept;
    # rootfs R1 current, R2 kept; one twin each; the .tmp ROM is being written right now
    assert rels(cache, p.doomed) == expected
    assert p.freed == sum(e.size for e in p.doomed) > 0
    gone = execute(p)
    assert rels(cache, gone) == expected
    assert not any((cache / r).exists() for r in expected)
    for stays in (f"kernel/out/{K1}", f"kernel/out/{K4}",
                  f"firmware/{F1}", f"firmware/{F3}.tmp.123", "keys/artifact",
                  "kernel/work-emulated", "twins/running", "twins/stopped"):
        assert (cache / stays).exists(), stays


def test_keep_zero_never_takes_keys_a_running_twin_or_the_current_tree(cache: Path) -> None:
    execute(plan(scan(current=current(), twin_running=running), keep=0))
    left = {str(p.relative_to(cache)) for p in cache.glob("*/*") if p.is_dir()} | {
        str(p.relative_to(cache)) for p in cache.glob("*/*/*") if p.is_dir()}
    assert "twins/running" in left and "twins/stopped" not in left
    assert (cache / "keys" / "artifact").is_file()
    assert {f"kernel/out/{K4}", f"rootfs/{R1}", f"firmware/base/{F1}",
            f"firmware/{F1}", "rootfs/cbmem-" + "c" * 16} <= left
    assert f"kernel/out/{K1}" not in left and f"rootfs/{R2}" not in left


def test_a_twin_started_after_the_scan_is_spared(cache: Path) -> None:
    p = plan(scan(current=current(), twin_running=running), keep=0)
    gone = execute(p, still_unused=lambda e: e.kind != "twins")
    assert "stopped" not in {e.name for e in gone}
    assert (cache / "twins" / "stopped").is_dir()


def test_refuses_to_delete_outside_the_cache(cache: Path, tmp_path: Path) -> None:
    usage = scan(current=current(), twin_running=running)
    outside = tmp_path / "precious"
    outside.mkdir()
    usage.entries["kernel"].append(Entry("kernel", outside, 1, 0.0))
    with pytest.raises(HilError, match="refusing to delete"):
        execute(plan(usage, keep=0))
    assert outside.is_dir()


def test_hard_linked_blocks_count_once(cache: Path) -> None:
    src = cache / "kernel" / "src" / "6.1.192-2" / "big"
    src.write_bytes(b"y" * (1 << 20))
    os.link(src, cache / "kernel" / "work-emulated" / "big")
    usage = scan(current=current(), twin_running=running)
    total = sum(e.size for e in usage.all_entries())
    assert usage.total == total
    (work,) = [e for e in usage.fixed if e.path.name == "work-emulated"]
    (pristine,) = usage.entries["kernel-src"]
    assert pristine.size >= 1 << 20 > work.size  # charged to the pristine tree only


def test_mark_used_moves_an_entry_to_the_front(cache: Path) -> None:
    artifact = cache / "kernel" / "out" / K3 / "artifact"
    assert entry_of(artifact) == cache / "kernel" / "out" / K3
    assert entry_of(cache / "firmware" / "base" / F1 / "x") == cache / "firmware" / "base" / F1
    assert entry_of(Path("/etc/passwd")) is None
    mark_used(artifact)
    p = plan(scan(current=current(), twin_running=running), keep=1)
    assert f"kernel/out/{K3}" not in rels(cache, p.doomed)
    assert f"kernel/out/{K1}" in rels(cache, p.doomed)


def test_a_used_rom_also_marks_its_base(cache: Path) -> None:
    make(cache, f"firmware/base/{F2}", 30)
    (cache / "firmware" / F3 / "manifest.json").write_text(json.dumps({"base_hash": F2}))
    before = (cache / "firmware" / "base" / F2).stat().st_mtime
    mark_used(cache / "firmware" / F3 / "coreboot.rom")
    assert (cache / "firmware" / "base" / F2).stat().st_mtime > before + 20 * HOUR
    assert (cache / "firmware" / F3).stat().st_mtime > time.time() - 60


# -- keys ------------------------------------------------------------------------------


def _fw_hash(fw: Path, cache: Path) -> tuple[str, str]:
    out = subprocess.run(["bash", str(fw / "build.sh"), "emulated", "--hash"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "WPP_HIL_CACHE": str(cache)}).stdout
    lines = dict(line.split("=", 1) for line in out.split())
    return lines["base_hash"], lines["hash"]


def test_firmware_hash_mode_follows_the_inputs_and_writes_nothing(tmp_path: Path) -> None:
    """``firmware/build.sh emulated --hash`` is the only place the firmware keys are
    computed: it changes with a build input, not with a document, and touches no cache."""
    fw = tmp_path / "firmware"
    subprocess.run(["cp", "-r", str(REPO_ROOT / "firmware"), str(fw)], check=True)
    empty = tmp_path / "cache"
    base, rom = _fw_hash(fw, empty)
    assert len(base) == 64 and len(rom) == 64 and base != rom
    assert not empty.exists(), "the hash mode created the cache"
    (fw / "README.md").write_text("docs are no build input\n")
    assert _fw_hash(fw, empty) == (base, rom)
    with (fw / "wpp" / "src" / "core.c").open("a") as f:
        f.write("/* a changed input */\n")
    assert _fw_hash(fw, empty)[0] != base
    assert cache_current.firmware_keys() == _fw_hash(REPO_ROOT / "firmware", empty)


def test_status_on_an_empty_cache_downloads_and_generates_nothing(tmp_path: Path) -> None:
    """Asking for the keys must not fetch the coreboot source (280 MB) nor make the twin's
    SSH keys: before, ``hil cache status`` on an empty cache did both."""
    empty = tmp_path / "cache"
    env = {**os.environ, "WPP_HIL_CACHE": str(empty)}
    cli = "import sys; from hil.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", cli, "cache", "status", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    made = sorted(str(p.relative_to(empty)) for p in empty.rglob("*")) if empty.exists() else []
    assert not any(m.startswith(("coreboot-src", "keys/")) for m in made), made
    status = json.loads(proc.stdout)
    assert "no key yet" in status["current_unknown"]["rootfs"]


def test_a_failing_key_script_leaves_the_kind_unknown(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(argv: list[str]) -> str:
        raise RuntimeError(f"{Path(argv[0]).name}: missing tool")

    monkeypatch.setattr(cache_current, "_script_key", fail)
    keys = cache_current.current_keys(cache)
    assert "missing tool" in keys.unknown["kernel"] and "missing tool" in keys.unknown["rootfs"]
    assert not keys.of("kernel") and "missing tool" in keys.unknown["coreboot-src"]
    assert "firmware" in keys.unknown  # needs the current kernel and initramfs
    # the payload-less ROM's keys come from firmware/build.sh --hash, which still answered
    assert len(keys.of("firmware")) == 1 and len(keys.of("firmware-base")) == 1


# -- CLI -------------------------------------------------------------------------------


def test_cli_status_and_prune(cache: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cache_cmd, "current_keys", lambda **_: current())
    monkeypatch.setattr(cache_cmd, "scan", lambda current: scan(current=current,
                                                                twin_running=running))
    assert main(["cache", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["root"] == str(cache)
    kernel = {e["name"]: e for e in status["kinds"]["kernel"]}
    assert kernel[K4]["in_use"] == "current tree" and kernel[K3]["delete"] is True
    assert status["current_unknown"]["firmware"] == "not built"

    assert main(["cache", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete kernel        {K3}" in out
    assert (cache / "kernel" / "out" / K3).is_dir()

    assert main(["cache", "prune", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert "deleted 5 entries" in out
    assert not (cache / "kernel" / "out" / K3).exists()
    assert (cache / "keys" / "artifact").is_file()


def test_cli_rejects_a_negative_keep(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cache", "prune", "--keep", "-1"])
    assert exc.value.code == 2
    assert "whole number" in capsys.readouterr().err


def test_board_entries_are_keyed_by_the_inventorys_dasharo_tag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the board build clones and builds the inventory's tag, so that tag's tree and ROM are
    # the ones in use, not the code's default
    text = (REPO_ROOT / "inventory.yaml").read_text()
    assert "dasharo_tag: msi_ms7d25_v1.1.3" in text
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text.replace("dasharo_tag: msi_ms7d25_v1.1.3", "dasharo_tag: msi_ms7d25_v9.9"))
    seen: list[object] = []

    def fake(**kw: object) -> CurrentKeys:
        seen.append(kw.get("dasharo_tags"))
        keys = CurrentKeys()
        for kind in ("firmware-board", "dasharo"):
            for tag in kw.get("dasharo_tags") or []:  # type: ignore[attr-defined]
                keys.add(kind, tag)
        return keys

    monkeypatch.setattr(cache_cmd, "current_keys", fake)
    assert main(["--inventory", str(inv), "cache", "key", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert seen == [["msi_ms7d25_v9.9"]]
    assert out["kinds"]["firmware-board"] == ["msi_ms7d25_v9.9"]
    # and current_keys itself keys both kinds by the given tags
    keys = cache_current.current_keys(tmp_path / "cache", dasharo_tags=["t1", "t2"])
    assert keys.of("firmware-board") == {"t1", "t2"} and keys.of("dasharo") == {"t1", "t2"}


def test_the_cache_verbs_work_without_a_loadable_inventory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[object] = []
    monkeypatch.setattr(cache_cmd, "current_keys",
                        lambda **kw: seen.append(kw) or CurrentKeys())
    assert main(["--inventory", str(tmp_path / "missing.yaml"), "cache", "key"]) == 0
    assert seen == [{}]  # the build's default tag
    assert len(capsys.readouterr().out.strip()) == 24


def test_coreboot_pin_is_said_by_the_source_script_without_fetching(tmp_path: Path) -> None:
    script = REPO_ROOT / "firmware" / "coreboot-source.sh"
    env = {**os.environ, "WPP_HIL_CACHE": str(tmp_path)}

    def pin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(script), "pin", *args], capture_output=True,
                              text=True, env=env, timeout=30, check=False)

    assert pin("COREBOOT_VERSION").stdout == "4.15~dfsg-3\n"
    assert len(pin("COREBOOT_ORIG_SHA256").stdout.strip()) == 64
    bad = pin("PATH")
    assert bad.returncode == 2 and "usage" in bad.stderr
    assert not any(tmp_path.iterdir())  # nothing fetched, nothing written
    env["COREBOOT_VERSION"] = "4.15~dfsg-9"  # what a fetch would take is what it says
    assert pin("COREBOOT_VERSION").stdout == "4.15~dfsg-9\n"
