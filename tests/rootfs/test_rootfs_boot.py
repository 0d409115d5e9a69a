"""Boots the guest initramfs under QEMU (TCG) with OUR kernel and checks the guest's
promises: the readiness line appears only once sshd listens, root logs in with the cached
client key over QEMU user networking, the fixed host key matches, and the bundled programs
run. The kernel comes from `kernel/build.sh emulated` (built if not cached);
$WPP_HIL_KERNEL may name an already built bzImage instead."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from rootfs_build import REPO

from hil.cache.keys import cache_root
from hil.core.timeout import Deadline, wait_for

pytestmark = [pytest.mark.twin, pytest.mark.slow]

READY = "wpp-guest: ready"


def emulated_kernel() -> Path:
    given = os.environ.get("WPP_HIL_KERNEL")
    if given:
        assert Path(given).is_file(), f"WPP_HIL_KERNEL={given} is not a file"
        return Path(given)
    script = REPO / "kernel" / "build.sh"
    assert script.is_file(), "kernel/build.sh is missing: the boot check needs our kernel"
    proc = subprocess.run([str(script), "emulated"], capture_output=True, text=True,
                          timeout=3600, check=False)
    assert proc.returncode == 0, f"kernel/build.sh emulated failed:\n{proc.stderr[-3000:]}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Guest:
    port: int
    serial_log: Path
    boot_seconds: float

    def ssh(self) -> paramiko.SSHClient:
        keys = cache_root() / "keys"
        kind, b64, *_ = (keys / "twin_host_ed25519.pub").read_text().split()
        client = paramiko.SSHClient()
        client.get_host_keys().add(
            f"[127.0.0.1]:{self.port}", kind, paramiko.Ed25519Key(data=base64.b64decode(b64))
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect("127.0.0.1", port=self.port, username="root",
                       key_filename=str(keys / "twin_ed25519"), timeout=30,
                       allow_agent=False, look_for_keys=False)
        return client


def run(client: paramiko.SSHClient, cmd: str, timeout: float = 120) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(cmd, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out


@pytest.fixture(scope="module")
def guest(initramfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    kernel = emulated_kernel()
    port = free_port()
    log = tmp_path_factory.mktemp("boot") / "serial.log"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-m", "2G", "-smp", "1",
         "-kernel", str(kernel), "-initrd", str(initramfs), "-append", "console=ttyS0",
         "-display", "none", "-monitor", "none", "-serial", f"file:{log}", "-no-reboot",
         "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
         "-device", "virtio-net-pci,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        boot = Deadline(180)

        def ready() -> bool:
            assert qemu.poll() is None, f"QEMU exited: {qemu.stderr.read().decode()}"
            return log.exists() and READY in log.read_text(errors="replace")

        wait_for(ready, boot.remaining, "the guest's readiness line")
        yield Guest(port, log, boot.elapsed)
    finally:
        qemu.terminate()
        try:
            qemu.wait(timeout=10)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()


def test_boot_order_and_console(guest: Guest) -> None:
    text = guest.serial_log.read_text(errors="replace")
    assert "wpp-guest: eth0 10.0.2.15/24" in text
    assert text.index("wpp-guest: eth0") < text.index(READY)
    wait_for(lambda: "wpp-guest# " in guest.serial_log.read_text(errors="replace"), 30,
             "the console shell prompt")
    assert "ssh-failed" not in text
    print(f"boot to ready: {guest.boot_seconds:.1f} s")


def test_ssh_and_bundled_programs(guest: Guest) -> None:
    client = guest.ssh()
    try:
        rc, out = run(client, "cbmem --version; redis-server --version; 7z | head -3")
        assert rc == 0, out
        assert "cbmem v" in out
        assert "Redis server v=7" in out
        assert "7-Zip" in out
        rc, out = run(client, "wpp-counter --iterations 3 --period-ms 50")
        assert rc == 0, out
        lines = [x for x in out.splitlines() if x.startswith("wpp-counter: n=")]
        assert len(lines) == 3 and all(" regs=ok " in x and " buf=ok " in x for x in lines)
        rc, out = run(client, "wpp-synth --size-mib 2 --cycles 2 --quiet")
        assert rc == 0 and out.startswith("wpp-synth: size_mib=2 cycles=2 total_ms="), out
        rc, out = run(client, "redis-server --daemonize yes --save '' --port 6379 "
                              "--logfile /tmp/redis.log && sleep 1 && redis-cli ping")
        assert rc == 0 and out.strip() == "PONG", out
        rc, out = run(client, "hostname; id -u; cat /proc/mounts")
        assert out.splitlines()[:2] == ["wpp-twin", "0"]
        assert " /dev/pts devpts " in out and " /tmp tmpfs " in out
    finally:
        client.close()


def test_sftp_round_trip(guest: Guest, tmp_path: Path) -> None:
    client = guest.ssh()
    try:
        sftp = client.open_sftp()
        src = tmp_path / "payload.bin"
        src.write_bytes(bytes(range(256)) * 64)
        sftp.put(str(src), "/tmp/payload.bin")
        back = tmp_path / "back.bin"
        sftp.get("/tmp/payload.bin", str(back))
        assert back.read_bytes() == src.read_bytes()
    finally:
        client.close()


def test_password_login_is_refused(guest: Guest) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect("127.0.0.1", port=guest.port, username="root", password="",
                       allow_agent=False, look_for_keys=False, timeout=30)
    client.close()
