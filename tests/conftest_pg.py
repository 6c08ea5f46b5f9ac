"""A real PostgreSQL 15 server for tests: loopback only, a free port, a temporary cluster.

Use the session-scoped ``postgres`` fixture (import it into a ``conftest.py``:
``from tests.conftest_pg import postgres  # noqa: F401``); one server runs per test session
(kept in ``config.stash``). ``start_postgres`` makes a private server for a test that stops and
starts it (``PgServer.stop``/``start``).

Needs the PostgreSQL 15 binaries (``initdb``, ``postgres``, ``pg_ctl``): Debian's ``postgresql-15``
package (``scripts/bootstrap test`` installs it); they are looked up in
``/usr/lib/postgresql/15/bin`` and then on ``PATH``. ``initdb`` refuses to run as root: as root the
server runs as the ``postgres`` user the package creates, in a directory outside pytest's
root-only temporary tree.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

HOST = "127.0.0.1"
# A throwaway cluster: durability across power loss is not what the tests check.
TEST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "60",
}
PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin")]


def pg_bin(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _as_server_user() -> None:
    """In the child: become ``postgres`` when root (initdb and postgres refuse root), and get a
    fast-shutdown signal if pytest dies without cleaning up (set after the uid change, which clears it)."""
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Server settings (``-c name=value``); the default is a throwaway cluster's (see ``start``).
    settings: dict[str, str] = field(default_factory=lambda: dict(TEST_SETTINGS))

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "server.log"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def store_options(self, dbname: str = "postgres") -> dict[str, object]:
        """Keyword arguments for :class:`events.storage.postgres.PostgresEventStore`."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": dbname,
            "user": self.user,
            "password": self.password,
        }

    def start(self, timeout: float = 30.0) -> None:
        postgres = pg_bin("postgres")
        assert postgres is not None
        cmd = [
            postgres, "-D", str(self.data_dir), "-k", str(self.data_dir),
            "-h", self.host, "-p", str(self.port),
        ]  # fmt: skip
        for name, value in self.settings.items():
            cmd += ["-c", f"{name}={value}"]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_as_server_user, cwd=self.data_dir
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                self.connect().close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"postgres did not accept connections in {timeout}s: {self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: clients are disconnected, the server shuts down cleanly."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pg_ctl = pg_bin("pg_ctl")
        assert pg_ctl is not None
        subprocess.run(
            [pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
            preexec_fn=_as_server_user,
            check=False,
            capture_output=True,
        )
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def start_postgres(settings: dict[str, str] | None = None) -> PgServer:
    """Make a cluster in a new temporary directory and start it; the caller stops it and removes
    ``data_dir.parent``. ``settings``: the server's, instead of the tests' throwaway ones (the
    city benchmark runs a durable, tuned server)."""
    initdb = pg_bin("initdb")
    if initdb is None or pg_bin("postgres") is None:
        pytest.fail("PostgreSQL 15 not found: apt-get install postgresql-15 (scripts/bootstrap test does)")
    root = Path(tempfile.mkdtemp(prefix="khupho-pg-"))  # /tmp, not pytest's root-only tree
    data = root / "data"
    data.mkdir()
    password = "khupho-test-" + os.urandom(8).hex()
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (root, data, pwfile):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    root.chmod(0o700)
    pwfile.chmod(0o600)
    result = subprocess.run(
        [
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        preexec_fn=_as_server_user,
        capture_output=True,
        check=False,
    )
    pwfile.unlink()
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')[-2000:]}")
    server = PgServer(host=HOST, port=_free_port(), user="postgres", password=password, data_dir=data)
    if settings is not None:
        server.settings = dict(settings)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove_postgres(server: PgServer) -> None:
    server.stop()
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


_KEY = pytest.StashKey[PgServer]()


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> PgServer:
    """A running PostgreSQL 15 on 127.0.0.1 (superuser ``postgres`` with a random password)."""
    config = request.config
    if _KEY in config.stash:
        return config.stash[_KEY]
    server = start_postgres()
    config.stash[_KEY] = server
    config.add_cleanup(lambda: remove_postgres(server))
    return server
