"""hil.drivers.shell against a real OpenSSH server on a loopback port."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sshd_fixture
from sshd_fixture import SshServer, free_port

from hil.core.errors import HilError, TimeoutExpired
from hil.core.timeout import Deadline
from hil.drivers.shell import Shell

sshd = sshd_fixture.sshd  # a real sshd on a loopback port


def test_run_returns_exit_code_stdout_stderr(sshd: SshServer) -> None:
    with Shell(**sshd.shell_kwargs()) as sh:
        res = sh.run("echo out; echo err >&2; exit 3", check=False)
        assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert not res.ok
        with pytest.raises(HilError, match="exited 3: err"):
            sh.run("echo err >&2; exit 3")
        assert sh.run("uname -s").stdout.strip() == "Linux"


def test_command_timeout_raises_and_shell_recovers(sshd: SshServer) -> None:
    with Shell(**sshd.shell_kwargs()) as sh:
        start = time.monotonic()
        with pytest.raises(TimeoutExpired, match="within 1 s"):
            sh.run("sleep 30", timeout=1)
        assert time.monotonic() - start < 10
        assert sh.run("echo again").stdout == "again\n"


def test_put_get_roundtrip(sshd: SshServer, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 1000)
    remote = str(tmp_path / "remote.bin")
    back = tmp_path / "back.bin"
    with Shell(**sshd.shell_kwargs()) as sh:
        sh.put(src, remote)
        assert sh.run(f"sha256sum {remote}").stdout.split()[0] == \
            __import__("hashlib").sha256(src.read_bytes()).hexdigest()
        sh.get(remote, back)
        with pytest.raises(HilError, match="failed"):
            sh.get(str(tmp_path / "missing"), tmp_path / "x")
    assert back.read_bytes() == src.read_bytes()


def test_reconnects_after_power_cycle_with_new_host_key(
    sshd: SshServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hil.drivers.shell")
    sh = Shell(**sshd.shell_kwargs())
    assert sh.run("echo one").stdout == "one\n"
    first_fp = sh.host_key_fingerprint
    assert first_fp == sshd.host_key_fingerprint  # fingerprint logged matches ssh-keygen -l

    # "power cycle + reflash": connection dies, server is down for a while, new host key
    stopped = threading.Event()
    restarter = threading.Thread(target=sshd.restart, kwargs={
        "new_host_key": True, "down_for": 2.0, "stopped": stopped})
    restarter.start()
    assert stopped.wait(20), "sshd did not stop"
    assert not sh.is_reachable()
    sh.wait_reachable(timeout=20, what="sshd after power cycle")  # was down: waited
    restarter.join()
    assert sh.run("echo two").stdout == "two\n"
    assert sh.host_key_fingerprint == sshd.host_key_fingerprint != first_fp
    assert sh.connections_opened >= 2
    assert any("host key" in r.message and "changed" in r.message for r in caplog.records)
    sh.close()


def test_wait_reachable_times_out_with_clear_error() -> None:
    port = free_port()  # nothing listens there
    sh = Shell("127.0.0.1", port, "root", password="pw", connect_timeout=1)
    start = time.monotonic()
    with pytest.raises(TimeoutExpired, match=f"waiting for ssh on root@127.0.0.1:{port}"):
        sh.wait_reachable(timeout=2)
    assert time.monotonic() - start < 8
    shared = Deadline(1.5)  # one budget shared by several waits
    with pytest.raises(TimeoutExpired, match="after 2 s"):
        sh.wait_reachable(shared)
    assert shared.expired


def test_password_never_leaks(sshd: SshServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Pa55word-xyz"
    sh = Shell(sshd.host, sshd.port, "nobody-such-user", password=secret, connect_timeout=5)
    assert secret not in repr(sh)
    with pytest.raises(HilError) as exc:
        sh.run("true")
    assert "authentication failed" in str(exc.value)
    assert secret not in str(exc.value) and secret not in (exc.value.hint or "")
    assert secret not in caplog.text
    assert secret not in sh.ssh_command()


def test_bad_credentials_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(HilError, match="no credentials"):
        Shell("127.0.0.1", 22, "root")
    with pytest.raises(HilError, match="does not exist"):
        Shell("127.0.0.1", 22, "root", key_file=tmp_path / "nokey")


def test_key_with_passphrase(sshd: SshServer, tmp_path: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = "pass-Phrase-987"
    key = tmp_path / "locked_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)],
                   check=True)
    with open(sshd.authorized_keys, "a") as f:
        f.write(key.with_suffix(".pub").read_text())
    ok = Shell(sshd.host, sshd.port, sshd.user, key_file=key, key_passphrase=passphrase)
    assert ok.run("echo unlocked").stdout == "unlocked\n"
    assert passphrase not in repr(ok)
    ok.close()
    with pytest.raises(HilError, match=r"cannot load ssh key .*wrong passphrase") as exc:
        Shell(sshd.host, sshd.port, sshd.user, key_file=key, key_passphrase="xyzzy").run("true")
    assert "xyzzy" not in str(exc.value)
    with pytest.raises(HilError, match="encrypted and no passphrase was given"):
        Shell(sshd.host, sshd.port, sshd.user, key_file=key).run("true")
    assert passphrase not in caplog.text
