"""A real Mosquitto broker on 127.0.0.1 for the tests (see ../shared/INFRA.md), with a password file."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, workdir: Path, user: str, password: str, port: int | None = None) -> None:
        if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
            pytest.skip("mosquitto is not installed (scripts/bootstrap test installs it)")
        self.workdir = workdir
        self.port = port or free_port()
        self.user, self.password = user, password
        workdir.mkdir(parents=True, exist_ok=True)
        self.passwd = workdir / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(self.passwd), user, password], check=True)
        self.passwd.chmod(0o600)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd}\n"
            "persistence false\n"
            # Run as whoever runs the tests (as root it would switch to the 'mosquitto' user, which
            # cannot read a password file in a private temporary directory).
            f"user {getpass.getuser()}\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
