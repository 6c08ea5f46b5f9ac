"""Real local Ray clusters for tests: a head and worker nodes on 127.0.0.2, each stopped by pid.

``ray stop`` would stop every Ray process on the machine (other test runs' too), so a node
is stopped by killing its own processes: those whose command line names its temporary
directory (raylet, GCS, log monitor), and their children (the node's agents and worker
processes, where the actors run). Ray rewrites 127.0.0.1 to the machine's address; 127.0.0.2
is still loopback (../shared/INFRA.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.conftest_s3 import free_ports

RAY_HOST = "127.0.0.2"
REPO = Path(__file__).resolve().parents[1]


def ray_binary() -> str:
    return str(Path(sys.executable).parent / "ray")


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    head: bool

    def pids(self) -> list[int]:
        """The node's processes: every process naming its temp dir, and their descendants."""
        marker = str(self.temp_dir)
        roots = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or ()):
                    roots.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        found: dict[int, psutil.Process] = {}
        for root in roots:
            found[root.pid] = root
            try:
                for child in root.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        return sorted(found)

    def kill(self) -> list[int]:
        """SIGKILL every process of the node (a machine losing power); returns their pids."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(psutil.pid_exists(p) and _alive(p) for p in pids):
            time.sleep(0.05)
        return pids


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The actors import khupho from this checkout, whatever the worker's working directory.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def start_ray_head(root: Path) -> tuple[RayNode, str]:
    """A head node offering no camera capacity; returns it and its address."""
    port, dashboard = free_ports(2)
    temp = root / "head"
    cmd = [
        ray_binary(), "start", "--head", f"--port={port}", f"--node-ip-address={RAY_HOST}",
        "--num-cpus=1", "--include-dashboard=false", f"--dashboard-port={dashboard}",
        "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    _run(cmd, root / "head.log")
    return RayNode("head", temp, head=True), f"{RAY_HOST}:{port}"


def start_ray_worker(root: Path, address: str, name: str, *, cameras: int) -> RayNode:
    """A worker node offering ``cameras`` units of khupho's camera capacity."""
    (manager,) = free_ports(1)
    temp = root / name
    cmd = [
        ray_binary(), "start", f"--address={address}", f"--node-ip-address={RAY_HOST}",
        "--num-cpus=1", f"--node-manager-port={manager}", f"--temp-dir={temp}",
        f"--resources={json.dumps({'khupho_cameras': cameras})}", "--disable-usage-stats",
    ]  # fmt: skip
    _run(cmd, root / f"{name}.log")
    return RayNode(name, temp, head=False)


def _run(cmd: list[str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {log.read_text()[-2000:]}")
