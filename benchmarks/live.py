"""Live capacity: N replayed cameras through the real service, and the largest N that keeps up.

A trial builds the ``khupho run`` service (:class:`api.service.Service`:
replayed clips at their real frame rate, per-camera workers, the shared
batcher, tracking, rules, SQLite event store, snapshots; the HTTP server is
not started) with N cameras cycling through the mixed set, lets it settle,
then measures for a window:

- every analysed frame's latency, from the moment the frame left the camera
  (``Frame.wall_time``) to the end of its rules (an event of that frame is
  published then): the p95 must be under 1 s;
- frames dropped by the cameras' queues (a consumer too slow) and analysis
  errors: there must be none;
- how far each camera's frames fell behind its own clock (decoding too slow
  to follow the camera): more than 1 s is a failure too;
- process CPU (% of the machine) and RSS.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.config import parse_config
from api.service import Service
from benchmarks.scenes import BenchCamera
from ingest import Frame
from ingest.motion import GateDecision
from pipeline import StepResult

LATENCY_LIMIT_S = 1.0
LAG_LIMIT_S = 1.0


@dataclass
class Trial:
    cameras: int
    seconds: float
    analysed: int = 0
    inferred: int = 0
    expected: float = 0.0  # analysed frames the cameras' rate promises over the window
    dropped: int = 0
    errors: int = 0
    p95_latency_s: float = 0.0
    max_lag_s: float = 0.0
    cpu_percent: float = 0.0  # of the whole machine
    rss_mb: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def rss_mb() -> float:
    """Resident set size of this process (MB), from /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _service_config(
    cameras: list[BenchCamera],
    footage: Path,
    data: Path,
    detector: dict[str, Any],
    motion: dict[str, Any] | None,
    fps: float,
) -> dict[str, Any]:
    return {
        "detector": detector,
        "storage": {
            "database": {"path": str(data / "events.db")},
            "objects": {"type": "local", "root": str(data / "media")},
        },
        "api": {"port": 0},
        "cameras": {
            f"{cam.name}-{i}": {
                "replay": {"path": str(footage / cam.clip), "analysis_fps": fps, "speed": 1.0, "loop": True},
                "motion": motion,
                "events": {"rules": cam.rules},
            }
            for i, cam in enumerate(cameras)
        },
    }


def run_trial(
    mixed: tuple[BenchCamera, ...],
    n: int,
    footage: Path,
    detector: dict[str, Any],
    motion: dict[str, Any] | None,
    *,
    fps: float = 5.0,
    settle_s: float = 4.0,
    window_s: float = 20.0,
) -> Trial:
    """Run ``n`` cameras (cycling through ``mixed``) and measure a ``window_s`` window after ``settle_s``."""
    cameras = [mixed[i % len(mixed)] for i in range(n)]
    trial = Trial(cameras=n, seconds=window_s)
    latencies: list[float] = []
    lags: dict[str, tuple[float, float]] = {}  # camera: (earliest wall - pts, largest lag)
    measuring = threading.Event()
    counts = {"analysed": 0, "inferred": 0}

    def on_analysed(*, frame: Frame, result: StepResult) -> None:
        now = time.time()
        offset = frame.wall_time - frame.pts
        base, worst = lags.get(frame.camera, (offset, 0.0))
        base = min(base, offset)
        lags[frame.camera] = (base, max(worst, offset - base) if measuring.is_set() else worst)
        if measuring.is_set():
            latencies.append(now - frame.wall_time)
            counts["analysed"] += 1
            counts["inferred"] += result.decision is GateDecision.DETECT

    quiet = [logging.getLogger(name) for name in ("api", "pipeline")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="khupho-bench-live-") as tmp:
        config = parse_config(_service_config(cameras, footage, Path(tmp), detector, motion, fps), "bench")
        service = Service(config)
        try:
            for worker in service.workers.values():
                worker.on_analysed = on_analysed
            service.start()
            time.sleep(settle_s)
            dropped0 = _dropped(service)
            errors0 = _errors(service)
            cpu0, wall0 = _cpu(), time.monotonic()
            measuring.set()
            time.sleep(window_s)
            measuring.clear()
            cpu1, wall1 = _cpu(), time.monotonic()
            trial.rss_mb = rss_mb()
            trial.dropped = _dropped(service) - dropped0
            trial.errors = _errors(service) - errors0
        finally:
            service.stop()
            for q, level in zip(quiet, levels, strict=True):
                q.setLevel(level)
    trial.analysed, trial.inferred = counts["analysed"], counts["inferred"]
    trial.expected = n * fps * window_s
    trial.cpu_percent = 100.0 * (cpu1 - cpu0) / (wall1 - wall0) / (os.cpu_count() or 1)
    if latencies:
        trial.p95_latency_s = float(np.percentile(latencies, 95))
    trial.max_lag_s = max((worst for _, worst in lags.values()), default=0.0)
    if trial.dropped or trial.errors:
        trial.failures.append(f"{trial.dropped} frames dropped, {trial.errors} analysis errors")
    if trial.p95_latency_s >= LATENCY_LIMIT_S:
        trial.failures.append(f"p95 latency {trial.p95_latency_s:.2f} s")
    if trial.max_lag_s >= LAG_LIMIT_S:
        trial.failures.append(f"decoding fell {trial.max_lag_s:.1f} s behind the cameras")
    if trial.analysed < 0.9 * trial.expected:
        trial.failures.append(f"analysed {trial.analysed} of {trial.expected:.0f} frames")
    return trial


def _dropped(service: Service) -> int:
    return sum(w.status().dropped_frames for w in service.workers.values())


def _errors(service: Service) -> int:
    # The worker counts a frame whose analysis failed as dropped with reason "analysis_error".
    registry = service.metrics.registry
    return int(
        sum(
            registry.get_sample_value(
                "khupho_frames_dropped_total", {"camera": cam, "reason": "analysis_error"}
            )
            or 0
            for cam in service.workers
        )
    )


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Capacity:
    cameras: int  # largest N that passed (0: none)
    trials: list[Trial]


def search_capacity(
    mixed: tuple[BenchCamera, ...],
    footage: Path,
    detector: dict[str, Any],
    motion: dict[str, Any] | None,
    *,
    start: int,
    max_cameras: int,
    log: Any = print,
    **trial_kw: Any,
) -> Capacity:
    """The largest N that passes: from ``start``, steps of 1, 2, 4... up (or down) until the verdict
    flips, then bisection between the last pass and the first failure. Latency only grows with
    more cameras, so one pass and one failure bracket the answer."""
    trials: dict[int, Trial] = {}

    def probe(n: int) -> bool:
        if n not in trials:
            t = run_trial(mixed, n, footage, detector, motion, **trial_kw)
            trials[n] = t
            log(
                f"  live N={n}: {'pass' if t.ok else 'FAIL'}  p95 {t.p95_latency_s:.2f} s, "
                f"inferred {t.inferred}/{t.analysed}, dropped {t.dropped}, lag {t.max_lag_s:.2f} s, "
                f"CPU {t.cpu_percent:.0f} %, RSS {t.rss_mb:.0f} MB"
                + ("" if t.ok else f"  ({'; '.join(t.failures)})")
            )
        return trials[n].ok

    n = max(1, min(start, max_cameras))
    step = 1
    if probe(n):
        good, bad = n, None
        while good < max_cameras:
            n = min(max_cameras, good + step)
            if not probe(n):
                bad = n
                break
            good, step = n, step * 2
    else:
        good, bad = 0, n
        while bad > 1:
            n = max(1, bad - step)
            if probe(n):
                good = n
                break
            bad, step = n, step * 2
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if probe(mid):
            good = mid
        else:
            bad = mid
    return Capacity(good, [trials[k] for k in sorted(trials)])


def probe_memory(
    cameras: tuple[BenchCamera, ...],
    n: int,
    footage: Path,
    detector: dict[str, Any],
    motion: dict[str, Any] | None,
    seconds: float = 6.0,
    timeout: float = 120.0,
) -> float:
    """RSS (MB) of a fresh process running ``n`` cameras for ``seconds``: a process of its own, so
    that nothing measured before (other sessions, arenas, decoded clips) is counted."""
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    spec = {
        "cameras": [c.name for c in cameras],
        "n": n,
        "footage": str(footage),
        "detector": detector,
        "motion": motion,
        "seconds": seconds,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.live", json.dumps(spec)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["rss_mb"])


def _probe_main(argv: list[str]) -> int:
    import json

    from benchmarks.scenes import MIXED_SET

    spec = json.loads(argv[0])
    by_name = {c.name: c for c in MIXED_SET}
    cams = tuple(by_name[name] for name in spec["cameras"])
    t = run_trial(
        cams,
        spec["n"],
        Path(spec["footage"]),
        spec["detector"],
        spec["motion"],
        settle_s=spec["seconds"] / 2,
        window_s=spec["seconds"] / 2,
    )
    print(json.dumps({"rss_mb": t.rss_mb, "ok": t.ok}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_probe_main(sys.argv[1:]))
