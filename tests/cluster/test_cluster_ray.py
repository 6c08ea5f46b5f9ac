"""Cluster mode on a real local Ray cluster: a head and two worker nodes, real PostgreSQL and SeaweedFS,
seven replayed cameras (one a traffic camera); one worker node is killed by pid and its cameras run
again on the other.

Then a fresh node joins (the cluster rebalances onto it gracefully) and the other old node is
killed: a rolling restart, one node at a time, never leaves a camera away longer than the bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from api.demo import DEMO_CAMERAS, DEMO_KHU_PHO, DEMO_WARDS
from tests.api.support import login
from tests.api.test_service_integration import read_sse
from tests.conftest_pg import PgServer
from tests.conftest_ray import RAY_HOST, RayNode, start_ray_head, start_ray_worker
from tests.conftest_s3 import S3Server, free_ports
from tests.events.mosquitto import Mosquitto
from tests.events.test_mqtt import PASSWORD as MQTT_PASSWORD
from tests.events.test_mqtt import USER as MQTT_USER
from tests.events.test_mqtt import Listener

pytestmark = pytest.mark.slow

REHOME_BOUND_S = 30.0
ADMIN_PASSWORD = "cluster-test-admin-0123"
# Six cameras (demo clip, khu phố), two per khu phố: the controller spreads each over both nodes.
CAMERAS = {
    "intersection-a": ("intersection", "kp1"),
    "intersection-b": ("intersection", "kp1"),
    "plaza-a": ("plaza", "kp2"),
    "plaza-b": ("plaza", "kp2"),
    "street-a": ("street", "kp3"),
    "street-b": ("street", "kp3"),
}
# And a traffic camera: its lane states reach the API's traffic board (signage) from its actor.
PARKING_TRAFFIC = {
    "calibration": {
        "image": [[0, 0], [768, 0], [768, 432], [0, 432]],
        "road": [[0, 0], [40, 0], [40, 22], [0, 22]],
    },
    "lanes": [{"name": "lot", "polygon": [[0, 0], [768, 0], [768, 432], [0, 432]], "free_flow_kmh": 20}],
}
CAPACITY = 8  # per worker node: one node can take all seven cameras


def _config(
    tmp: Path,
    footage: Path,
    models: Path,
    pg: PgServer,
    dbname: str,
    s3: S3Server,
    ray: str,
    port: int,
    mqtt: int,
):
    cameras = {}
    for cam_id, (demo, khu_pho) in CAMERAS.items():
        spec = DEMO_CAMERAS[demo]
        cameras[cam_id] = {
            "name": cam_id,
            "khu_pho": khu_pho,
            "replay": {"path": str(footage / spec["clip"]), "analysis_fps": 2, "speed": 1, "loop": True},
            "events": {"rules": spec["rules"]},
        }
    cameras["parking"] = {
        "khu_pho": "kp3",
        "replay": {"path": str(footage / "parking_lot_overhead_768x432_h264.mp4"), "analysis_fps": 2},
        "traffic": PARKING_TRAFFIC,
    }
    return {
        "traffic": {"segments": [{"id": "lot", "name": "Bãi đỗ xe", "lanes": ["parking/lot"]}]},
        "detector": {"model": str(models / "yolov8n-coco.onnx"), "imgsz": 320},
        "storage": {
            "database": {
                "type": "postgres",
                "host": pg.host,
                "port": pg.port,
                "dbname": dbname,
                "user": pg.user,
                "password": pg.password,
            },
            "objects": {
                "type": "s3",
                "endpoint": s3.endpoint,
                "bucket": "khupho-cluster",
                "access_key": s3.access_key,
                "secret_key": s3.secret_key,
                "secure": False,
            },
            "state_dir": str(tmp / "state"),
        },
        "privacy": {"face_model": str(models / "face_detection_yunet.onnx")},
        "api": {"host": "127.0.0.1", "port": port},
        "publish": {
            "mqtt": {
                "port": mqtt,
                "username": MQTT_USER,
                "password": MQTT_PASSWORD,
                "event_types": ["camera_offline", "camera_online"],
            }
        },
        "wards": DEMO_WARDS,
        "khu_pho": DEMO_KHU_PHO,
        "cameras": cameras,
        "cluster": {
            "address": ray,
            "node_ip_address": RAY_HOST,
            "rehome_after_s": 5,
            "poll_interval_s": 1,
            "max_moves_per_round": 2,
        },
    }


def _khupho(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )


DIAGNOSE: list[Any] = []  # called when a wait times out: what the cluster and the database hold


def _wait(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = "; ".join(str(d()) for d in DIAGNOSE)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {seen}")
        time.sleep(every)


def _cameras(client: httpx.Client) -> dict[str, dict[str, Any]]:
    r = client.get("/cameras")
    assert r.status_code == 200, r.text
    return {c["id"]: c for c in r.json()}


def _all_online(client: httpx.Client, nodes: set[str] | None = None) -> dict[str, dict[str, Any]] | None:
    cams = _cameras(client)
    ok = all(c["state"] == "online" and c["node"] for c in cams.values())
    if ok and nodes is not None:
        ok = all(c["node"] in nodes for c in cams.values())
    return cams if ok else None


def _events(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, camera, type, start_us, end_us, active, data FROM events ORDER BY start_us"
    ).fetchall()
    keys = ("id", "camera", "type", "start", "end", "active", "data")
    return [
        dict(zip(keys, (*r[:3], r[3] / 1e6, None if r[4] is None else r[4] / 1e6, *r[5:]), strict=True))
        for r in rows
    ]


def test_cluster_rehomes_cameras_of_a_killed_node(
    tmp_path: Path, footage_dir: Path, models_dir: Path, postgres: PgServer, seaweedfs: S3Server
) -> None:
    dbname = f"cluster_{os.getpid()}_{int(time.time())}"
    with postgres.connect() as admin:
        admin.autocommit = True
        admin.execute(f"CREATE DATABASE {dbname}")
    ray_root = Path("/tmp") / f"khupho-ray-{os.getpid()}-{int(time.time())}"  # short: socket paths
    ray_root.mkdir()
    nodes: list[RayNode] = []
    procs: list[subprocess.Popen[bytes]] = []
    port, port2 = free_ports(2)
    broker = Mosquitto(tmp_path / "mosquitto", MQTT_USER, MQTT_PASSWORD).start()
    listener = Listener(broker.port)
    sse: list[dict[str, Any]] = []  # what the second API replica streams
    env = dict(os.environ, KHUPHO_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONPATH=str(Path.cwd()))
    try:
        head, address = start_ray_head(ray_root)
        nodes.append(head)
        first = start_ray_worker(ray_root, address, "w1", cameras=CAPACITY)
        second = start_ray_worker(ray_root, address, "w2", cameras=CAPACITY)
        nodes += [first, second]
        cfg, cfg2 = tmp_path / "khupho.yaml", tmp_path / "replica.yaml"
        for path, api_port in ((cfg, port), (cfg2, port2)):  # one config; each replica its own port
            config = _config(
                tmp_path, footage_dir, models_dir, postgres, dbname, seaweedfs, address, api_port, broker.port
            )
            path.write_text(yaml.safe_dump(config, allow_unicode=True))
        procs.append(_khupho("run", "--config", str(cfg), env=env, log=tmp_path / "run.log"))
        url, url2 = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port2}"
        with (
            httpx.Client(base_url=url, timeout=10) as client,
            psycopg.connect(
                host=postgres.host, port=postgres.port, dbname=dbname, user=postgres.user,
                password=postgres.password, autocommit=True,
            ) as db,
        ):  # fmt: skip

            def up() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    return procs[0].poll() is not None

            _wait("the API", up, 90)
            assert procs[0].poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            login(client, "admin", ADMIN_PASSWORD)
            # A second, stateless API replica: same accounts (in PostgreSQL), same live feed.
            procs.append(_khupho("run", "--config", str(cfg2), env=env, log=tmp_path / "run2.log"))

            def up2() -> bool:
                try:
                    return httpx.get(f"{url2}/healthz", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return procs[1].poll() is not None

            _wait("the second API replica", up2, 90)
            assert procs[1].poll() is None, (tmp_path / "run2.log").read_text()[-3000:]
            threading.Thread(target=_follow, args=(url2, sse), daemon=True).start()
            DIAGNOSE[:] = [
                lambda: _cameras(client),
                lambda: db.execute(
                    "SELECT camera, type, count(*), max(start_us) FROM events GROUP BY camera, type"
                ).fetchall(),
            ]

            # 1. Every camera placed, analysed, its events stored; a khu phố spread over both nodes.
            cams = _wait("seven cameras online", lambda: _all_online(client), 120)
            by_node: dict[str, list[str]] = defaultdict(list)
            for cam in cams.values():
                by_node[cam["node"]].append(cam["id"])
            assert len(by_node) == 2 and sorted(len(v) for v in by_node.values()) == [3, 4], by_node
            for kp_cams in (
                ("intersection-a", "intersection-b"),
                ("plaza-a", "plaza-b"),
                ("street-a", "street-b"),
            ):
                assert cams[kp_cams[0]]["node"] != cams[kp_cams[1]]["node"], "a khu phố on one node"

            def stored_everywhere() -> bool:
                rows = db.execute(
                    "SELECT camera, count(*) FROM events WHERE type NOT LIKE 'camera_%%' GROUP BY camera"
                ).fetchall()
                return len(rows) >= len(CAMERAS)

            _wait("events from every camera", stored_everywhere, 120)

            # 2. Kill the node holding intersection-a: its raylet, agents and actor processes, by pid.
            status = _status(env, cfg, tmp_path)
            victim_id = cams["intersection-a"]["node"]
            victim_addr = next(n["address"] for n in status["nodes"] if n["id"] == victim_id)
            victim = next(n for n in (first, second) if _owns(n, victim_addr))
            survivor = second if victim is first else first
            moved = sorted(c for c, v in cams.items() if v["node"] == victim_id)
            stayed = sorted(set(CAMERAS) - set(moved))
            killed_pids = victim.kill()
            killed_at = time.time()
            assert killed_pids, "the node had no processes to kill"

            cams = _wait(
                "the lost node's cameras running elsewhere",
                lambda: _all_online(client, nodes={c["node"] for c in cams.values()} - {victim_id}),
                REHOME_BOUND_S + 15,
            )
            rehomed_in = time.time() - killed_at
            assert rehomed_in <= REHOME_BOUND_S, f"re-homed in {rehomed_in:.1f} s"
            print(f"cameras {moved} online on the other node {rehomed_in:.1f} s after the kill")

            # 3. The feed shows each moved camera going offline and coming back; the others never did.
            def pairs() -> dict[str, set[str]]:
                got: dict[str, set[str]] = defaultdict(set)
                for e in _events(db):
                    recent = e["type"] in ("camera_offline", "camera_online") and e["start"] >= killed_at - 1
                    if recent and (e["type"] == "camera_online" or not e["active"]):
                        got[e["camera"]].add(e["type"])
                return got

            got = _wait(
                "camera_offline/camera_online pairs",
                lambda: (
                    (p := pairs()) and all(p[c] == {"camera_offline", "camera_online"} for c in moved) and p
                ),
                20,
            )
            assert not set(got) & set(stayed), f"cameras that never moved went offline: {got}"

            # The same pairs reached the second replica's live stream from the database feed, and MQTT
            # once: only the replica holding the publishers' lock publishes.
            def streamed() -> bool:
                seen = {(m["event"]["camera"], m["event"]["type"]) for m in list(sse)}
                return all({(c, "camera_offline"), (c, "camera_online")} <= seen for c in moved)

            _wait("offline/online pairs on the second replica's SSE stream", streamed, 20)
            assert any(m["event"]["type"] not in ("camera_offline", "camera_online") for m in sse), (
                "the stream carried no camera event: the feed from the camera actors is missing"
            )

            def offline_news() -> dict[str, int]:
                out: dict[str, int] = defaultdict(int)
                for payload in listener.on("khupho/events"):
                    msg = json.loads(payload)
                    if msg["type"] == "new" and msg["after"]["type"] == "camera_offline":
                        out[msg["after"]["camera"]] += 1
                return out

            _wait("camera_offline on MQTT", lambda: set(offline_news()) >= set(moved), 20)
            time.sleep(2)  # a second publisher would have sent its copy by now
            assert offline_news() == dict.fromkeys(moved, 1), offline_news()
            online_at = {}
            for e in _events(db):
                if e["type"] == "camera_offline" and e["camera"] in moved and e["start"] >= killed_at - 1:
                    assert e["end"] - killed_at <= REHOME_BOUND_S, e
                    online_at[e["camera"]] = e["end"]

            # 4. Nothing doubled: the old actors' batches all landed before their cameras were fenced
            # (lease epoch raised), every event they left open ended at or before the hand-over, and
            # every later event of the camera starts after it. Counts equal stored crossings.
            leases = {
                r[0]: (r[1], r[2] / 1e6)
                for r in db.execute("SELECT camera, epoch, since_us FROM cluster_leases")
            }
            for cam in moved:
                epoch, since = leases[cam]
                late = db.execute(
                    "SELECT batch_id, applied_us FROM applied_batches"
                    " WHERE batch_id LIKE %s AND batch_id NOT LIKE %s AND applied_us > %s",
                    (f"{cam}@%", f"{cam}@{epoch}-%", int(since * 1e6)),
                ).fetchall()
                assert not late, f"{cam}: batches of an old epoch stored after the hand-over: {late}"
                for e in _events(db):
                    if e["camera"] != cam or e["type"].startswith("camera_"):
                        continue
                    if e["start"] < killed_at:
                        assert e["end"] is not None and e["end"] <= online_at[cam] + 1, e
                    else:
                        assert e["start"] >= killed_at, e
            interrupted = [
                e
                for e in _events(db)
                if e["data"].get("end_reason") == "interrupted" and e["camera"] in stayed
            ]
            assert not interrupted, f"events of cameras that never moved were cut: {interrupted}"
            _assert_counts_match_crossings(db)

            # The moved cameras work on their new node: new events, stored.
            def analysed_again() -> bool:
                return all(
                    db.execute(
                        "SELECT count(*) FROM events"
                        " WHERE camera = %s AND start_us > %s AND type NOT LIKE 'camera_%%'",
                        (cam, int(killed_at * 1e6)),  # the old actor was dead by then: the new one
                    ).fetchone()[0]
                    > 0
                    for cam in moved
                    if cam in CAMERAS  # the traffic camera raises no event of its own on this clip
                )

            _wait("events from the moved cameras on their new node", analysed_again, 90)

            # 5. Operations: the CLI and /metrics show one node holding all seven cameras.
            text = subprocess.run(
                [sys.executable, "-m", "api.cli", "cluster", "status", "--config", str(cfg)],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert text.returncode == 0, text.stderr
            assert "7 cameras, 0 unplaced" in text.stdout and f"{len(moved)} re-homed" in text.stdout, (
                text.stdout
            )
            metrics = client.get("/metrics").text
            survivor_cameras = f'khupho_node_cameras{{node="{_address_of(status, survivor)}"}} 7.0'
            assert survivor_cameras in metrics, metrics[:3000]

            # The traffic camera's lanes, analysed in its actor, give the public page a level.
            def lot() -> dict[str, Any]:
                public = httpx.get(f"{url}/public/traffic", timeout=10).json()  # no login: public
                return next(s for s in public["segments"] if s["id"] == "lot")

            _wait("a traffic level for the parking segment", lambda: lot()["level"] != "unknown", 30)

            # 6. Rolling restart: a new node joins, cameras move onto it gracefully (no offline event),
            # then the other old node goes; no camera is away longer than the bound at any step.
            third = start_ray_worker(ray_root, address, "w3", cameras=CAPACITY)
            nodes.append(third)
            before_join = time.time()
            away = _Watch()
            _wait(
                "cameras rebalanced onto the new node",
                lambda: away.sample(client) and len({c["node"] for c in _cameras(client).values()}) == 2
                and _all_online(client),
                90, every=1.0,
            )  # fmt: skip
            graceful = [e for e in _events(db) if e["type"] == "camera_offline" and e["start"] >= before_join]
            assert not graceful, f"a graceful move raised camera_offline: {graceful}"
            survivor.kill()

            def on_one_node() -> bool:
                return bool(_all_online(client)) and len({c["node"] for c in _cameras(client).values()}) == 1

            _wait(
                "every camera on the new node",
                lambda: away.sample(client) and on_one_node(),
                REHOME_BOUND_S + 15,
                every=1.0,
            )
            assert away.longest() <= REHOME_BOUND_S, f"a camera was away {away.longest():.1f} s"
            print(f"rolling restart: longest a camera was not online {away.longest():.1f} s")
            _assert_counts_match_crossings(db)

            # 7. Stop: every camera ends its open events.
            stopped = subprocess.run(
                [sys.executable, "-m", "api.cli", "cluster", "stop", "--config", str(cfg)],
                env=env, capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            assert stopped.returncode == 0, stopped.stderr
            still_open = db.execute("SELECT camera, type FROM events WHERE active").fetchall()
            assert not still_open, still_open
    finally:
        listener.close()
        broker.kill()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for node in reversed(nodes):
            node.kill()


def _follow(url: str, out: list[dict[str, Any]]) -> None:
    """Collect a replica's SSE stream until the replica stops (the end of the test)."""
    with contextlib.suppress(httpx.HTTPError):
        read_sse(url, ADMIN_PASSWORD, 900, out)


class _Watch:
    """How long each camera has been away (not online) at most, sampled about once a second."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}
        self.worst = 0.0

    def sample(self, client: httpx.Client) -> bool:
        now = time.monotonic()
        for cam_id, cam in _cameras(client).items():
            if cam["state"] == "online":
                self.since.pop(cam_id, None)
            else:
                start = self.since.setdefault(cam_id, now)
                self.worst = max(self.worst, now - start)
        return True

    def longest(self) -> float:
        return self.worst


def _assert_counts_match_crossings(db: psycopg.Connection) -> None:
    crossings = dict(
        db.execute(
            "SELECT camera, count(*) FROM events WHERE type = 'line_crossing' GROUP BY camera"
        ).fetchall()
    )
    counts = dict(  # the traffic camera's lane counts are not crossings of a line rule
        db.execute(
            "SELECT camera, sum(count) FROM traffic WHERE camera <> 'parking' GROUP BY camera"
        ).fetchall()
    )
    assert crossings, "no crossing stored"
    assert {k: int(v) for k, v in counts.items()} == crossings


def _status(env: dict[str, str], cfg: Path, tmp: Path) -> dict[str, Any]:
    import json

    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "cluster", "status", "--json", "--config", str(cfg)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _owns(node: RayNode, address: str) -> bool:
    """Whether ``address`` (host:node manager port) is this node's raylet."""
    port = address.rsplit(":", 1)[1]
    return any(f"--node_manager_port={port}" in " ".join(_cmdline(pid)) for pid in node.pids())


def _address_of(status: dict[str, Any], node: RayNode) -> str:
    return next(n["address"] for n in status["nodes"] if _owns(node, n["address"]))


def _cmdline(pid: int) -> list[str]:
    import psutil

    try:
        return psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return []
