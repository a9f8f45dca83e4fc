"""A real network file system for tests and benchmarks: sshfs over loopback.

Starts a private ``sshd`` on 127.0.0.1 (a free port, throwaway host and client
keys, its own config and pid file in a temporary folder) and mounts a temporary
folder through ``sshfs``. Both processes are started here and stopped by their
process ids. Used by ``tests/locality/conftest.py`` and ``tools/bench_locality.py``.

Needs (Debian): ``openssh-server``, ``openssh-client`` (ssh-keygen, ssh) and
``sshfs`` (which brings ``fuse3``), plus ``/dev/fuse`` and the right to mount.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SshfsMount", "SshfsUnavailable", "sshfs_loopback", "unavailable_reason"]

_SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


class SshfsUnavailable(RuntimeError):
    """The machine lacks what an sshfs loopback mount needs; the message says what."""


@dataclass(frozen=True)
class SshfsMount:
    """A live sshfs mount: files written to ``backing`` appear under ``mount_point``."""

    mount_point: Path
    backing: Path
    port: int
    sshd_pid: int
    sshfs_pid: int


def _sshd() -> str | None:
    return shutil.which("sshd") or next((p for p in _SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def unavailable_reason() -> str | None:
    """Why an sshfs loopback mount cannot be made here, or ``None`` if it can be tried."""
    missing = [
        name
        for name, found in (
            ("sshd (apt-get install openssh-server)", _sshd()),
            ("ssh-keygen (apt-get install openssh-client)", shutil.which("ssh-keygen")),
            ("sshfs (apt-get install sshfs)", shutil.which("sshfs")),
            ("fusermount or umount", shutil.which("fusermount3") or shutil.which("fusermount")
             or shutil.which("umount")),
        )
        if not found
    ]
    if missing:
        return "missing: " + ", ".join(missing)
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def _write_config(tmp: Path, port: int) -> Path:
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {tmp / 'host_key'}\n"
        f"PidFile {tmp / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    return config


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SshfsUnavailable(f"sshd exited with status {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise SshfsUnavailable(f"sshd did not accept connections on 127.0.0.1:{port} within {timeout:g} s")


def _is_mounted(mount_point: Path) -> bool:
    target = os.fsencode(str(mount_point)).replace(b" ", b"\\040")
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", "rb") as fh:
        return any(line.split(b" ")[4] == target for line in fh)
    return os.path.ismount(mount_point)


def _tail(path: Path, n: int = 600) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-n:].strip() or "(empty log)"
    return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _unmount(mount_point: Path) -> None:
    for cmd in (["fusermount3", "-u"], ["fusermount", "-u"], ["umount", "-l"]):
        if shutil.which(cmd[0]) is None:
            continue
        done = subprocess.run([*cmd, str(mount_point)], capture_output=True, timeout=30, check=False)
        if done.returncode == 0 or not _is_mounted(mount_point):
            return


@contextlib.contextmanager
def sshfs_loopback(parent: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> Iterator[SshfsMount]:
    """Mount a fresh temporary folder through sshfs over 127.0.0.1 for the duration of the block.

    Parameters
    ----------
    parent
        Where to make the temporary folder (default: the system's temporary folder).
    timeout
        Bound, in seconds, on each wait (sshd listening, the mount appearing).

    Raises
    ------
    SshfsUnavailable
        A needed program or device is missing, or sshd/sshfs failed; the message says why.
    """
    reason = unavailable_reason()
    if reason:
        raise SshfsUnavailable(reason)
    sshd = _sshd()
    assert sshd is not None
    tmp = Path(tempfile.mkdtemp(prefix="arraystore-sshfs-", dir=parent))
    backing, mount_point, log = tmp / "remote", tmp / "mnt", tmp / "sshd.log"
    backing.mkdir()
    mount_point.mkdir()
    sshd_proc: subprocess.Popen[bytes] | None = None
    sshfs_proc: subprocess.Popen[bytes] | None = None
    try:
        _keygen(tmp / "host_key")
        _keygen(tmp / "client_key")
        shutil.copyfile(tmp / "client_key.pub", tmp / "authorized_keys")
        os.chmod(tmp / "authorized_keys", 0o600)
        # Debian's sshd refuses to start without its privilege-separation folder.
        with contextlib.suppress(OSError):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        port = _free_port()
        config = _write_config(tmp, port)
        sshd_proc = subprocess.Popen(
            [sshd, "-D", "-f", str(config), "-E", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_listening(sshd_proc, port, log, timeout)
        options = ",".join([
            f"IdentityFile={tmp / 'client_key'}",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "LogLevel=ERROR",
        ])
        remote = f"{getpass.getuser()}@127.0.0.1:{backing}"
        sshfs_log = tmp / "sshfs.log"
        with open(sshfs_log, "wb") as out:
            sshfs_proc = subprocess.Popen(
                ["sshfs", "-f", "-p", str(port), "-o", options, remote, str(mount_point)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not _is_mounted(mount_point):
            if sshfs_proc.poll() is not None:
                raise SshfsUnavailable(f"sshfs exited with status {sshfs_proc.returncode}: {_tail(sshfs_log)}")
            if time.monotonic() > deadline:
                raise SshfsUnavailable(f"sshfs did not mount {mount_point} within {timeout:g} s: {_tail(sshfs_log)}")
            time.sleep(0.05)
        yield SshfsMount(mount_point, backing, port, sshd_proc.pid, sshfs_proc.pid)
    finally:
        if _is_mounted(mount_point):
            _unmount(mount_point)
        _stop(sshfs_proc)
        _stop(sshd_proc)
        if not _is_mounted(mount_point):
            shutil.rmtree(tmp, ignore_errors=True)
