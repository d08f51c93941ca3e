"""A real Mosquitto broker on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """Runs `mosquitto` with a generated config; restartable on the same port."""

    def __init__(self, port: int | None = None, extra_config: str = "", workdir: Path | None = None,
                 users: dict[str, str] | None = None):
        """`users` (name -> password): only they may log in (a password file, no anonymous
        clients); otherwise `extra_config`, or anonymous access."""
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="hearth-mosquitto-"))
        if self._own_dir:
            # Mosquitto started as root drops to the `mosquitto` user, which must write its log here.
            self.workdir.chmod(0o777)
        self.extra_config = extra_config
        self.users = dict(users or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        body = self.extra_config or "allow_anonymous true\n"
        if self.users:
            body = f"allow_anonymous false\npassword_file {self._write_passwords()}\n{self.extra_config}"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"persistence false\n"
            f"log_dest file {self.log_path}\n"
            f"log_type error\nlog_type warning\nlog_type notice\n"
            f"{body}"
        )
        return conf

    def _write_passwords(self) -> Path:
        path = self.workdir / "passwd"
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        for name, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(path), name, password], check=True,
                           capture_output=True)
        if os.geteuid() == 0:  # Mosquitto started as root reads it as user `mosquitto`
            with contextlib.suppress(KeyError):
                owner = pwd.getpwnam("mosquitto")
                os.chown(path, owner.pw_uid, owner.pw_gid)
        return path

    def start(self) -> "Mosquitto":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.write_config()
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err} {self.log_path.read_text() if self.log_path.exists() else ''}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HEARTH_MQTT_HOST": self.host, "HEARTH_MQTT_PORT": str(self.port)}
