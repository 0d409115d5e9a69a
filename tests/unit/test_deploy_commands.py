"""hil.lab.deploy on the lab board: the exact commands, for a kernel that comes up and one that
does not (the twin runs the whole flow for real: tests/emulated/test_deploy.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.core.errors import ConfigError, HilError
from hil.lab import deploy as D


@dataclass
class Res:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


class FakeShell:
    def __init__(self, kernels: list[str]) -> None:
        self.kernels = kernels  # what `uname -r` says, boot after boot
        self.boot = 0
        self.commands: list[str] = []
        self.up = True

    def run(self, cmd: str, timeout: float = 0, check: bool = False) -> Res:
        self.commands.append(cmd)
        if cmd == "uname -r":
            return Res(self.kernels[min(self.boot, len(self.kernels) - 1)] + "\n")
        if "menuentry_id_option" in cmd:
            return Res("gnulinux-advanced-u1>gnulinux-6.1.192-wpp-advanced-u1\n")
        if "reboot" in cmd:
            self.up = False
        return Res()

    def is_reachable(self) -> bool:
        return self.up


class FakeTarget:
    def __init__(self, shell: FakeShell, boots: list[bool]) -> None:
        self.shell = shell
        self.boots = boots
        self.board = type("B", (), {"name": "msi-z690"})()
        self.broken: str | None = None
        self.events: list[str] = []

    def boot(self, timeout: float, banner: bool = True) -> None:
        ok = self.boots.pop(0)
        self.events.append(f"boot {'ok' if ok else 'FAIL'}")
        self.shell.boot += 1
        self.shell.up = ok
        if not ok:
            raise HilError("no SSH within 600 s")

    def force_off(self) -> None:
        self.events.append("force_off")


DEBS = [Path("/b/linux-headers-6.1.192-wpp_1_amd64.deb"),
        Path("/b/linux-image-6.1.192-wpp_1_amd64.deb"),
        Path("/b/linux-image-6.1.192-wpp-dbg_1_amd64.deb")]


def copied() -> tuple[list[tuple[Path, str]], Any]:
    seen: list[tuple[Path, str]] = []
    return seen, lambda shell, deb, dst: seen.append((deb, dst))


def test_version_from_the_image_package() -> None:
    assert D.deb_version(DEBS) == "6.1.192-wpp"
    with pytest.raises(ConfigError):
        D.deb_version([Path("linux-headers-6.1_1_amd64.deb")])


def test_a_kernel_that_comes_up_becomes_the_default() -> None:
    shell = FakeShell(["5.15.0-91-generic", "6.1.192-wpp"])
    target = FakeTarget(shell, [True])
    seen, put = copied()
    r = D.deploy_board(target, DEBS, put=put)
    assert r.deployed and not r.rolled_back and r.running == "6.1.192-wpp"
    assert [d for d, _ in seen] == DEBS and all(dst == f"{D.REMOTE_DIR}/" for _, dst in seen)
    cmds = shell.commands
    dpkg = next(c for c in cmds if c.startswith("DEBIAN_FRONTEND=noninteractive dpkg -i"))
    assert all(f"{D.REMOTE_DIR}/{d.name}" in dpkg for d in DEBS)
    order = [cmds.index(dpkg),
             cmds.index("grub-reboot 'gnulinux-advanced-u1>gnulinux-6.1.192-wpp-advanced-u1'"),
             cmds.index("systemctl reboot || reboot"),
             cmds.index("grub-set-default 'gnulinux-advanced-u1>gnulinux-6.1.192-wpp-advanced-u1'")]
    assert order == sorted(order)  # one-shot first, the default only after it answered
    assert any("GRUB_DEFAULT=saved" in c for c in cmds)


def test_a_kernel_that_hangs_is_undone_by_a_power_cycle() -> None:
    shell = FakeShell(["5.15.0-91-generic", "5.15.0-91-generic", "5.15.0-91-generic"])
    target = FakeTarget(shell, [False, True])
    _, put = copied()
    r = D.deploy_board(target, DEBS, put=put)
    assert not r.deployed and r.rolled_back and r.running == "5.15.0-91-generic"
    assert "no SSH" in r.cause
    assert target.events == ["boot FAIL", "force_off", "boot ok"]
    assert not any(c.startswith("grub-set-default") for c in shell.commands)


def test_a_board_that_stays_down_is_a_clear_error() -> None:
    target = FakeTarget(FakeShell(["5.15.0"]), [False, False])
    _, put = copied()
    with pytest.raises(HilError, match="rollback failed") as e:
        D.deploy_board(target, DEBS, put=put)
    assert e.value.hint and "hil console" in e.value.hint


def test_bzimage_version_reads_the_setup_header(tmp_path: Path) -> None:
    img = bytearray(0x4000)
    img[0x202:0x206] = b"HdrS"
    img[0x20E:0x210] = (0x1000).to_bytes(2, "little")
    text = b"6.1.192 (root@vm) #1 Wed Dec 2\0"
    img[0x1200:0x1200 + len(text)] = text
    k = tmp_path / "bzImage"
    k.write_bytes(bytes(img))
    assert D.bzimage_version(k) == "6.1.192 (root@vm) #1 Wed Dec 2"
    assert D.uname_of(D.bzimage_version(k)) == "6.1.192 #1 Wed Dec 2"
    k.write_bytes(b"\0" * 0x1000)
    with pytest.raises(ConfigError, match="not a bzImage"):
        D.bzimage_version(k)
