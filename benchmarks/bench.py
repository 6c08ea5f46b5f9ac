"""``khupho bench``: the speed and quality table, every row measured in one run on the shared footage.

    khupho bench [--quick] [--imgsz 640] [--out out/bench]
    python -m benchmarks.bench [--quick] ...

Rows (same model and image size throughout; "auto" is the runtime and
precision ``detector.runtime: auto`` picks on this machine, e.g. OpenVINO bf16):

1. limit: the automatic runtime alone on ready tensors of the offline clip's
   input shape, at the best batch size (images/s); onnxruntime session options;
   every runtime and precision (onnxruntime fp32, OpenVINO fp32, bf16 and NNCF
   int8) alone at the offline batch, each with its parity F1 against the
   shared Ultralytics reference;
2. peers: Ultralytics' ``YOLO(onnx).track(stream=True)`` and the same loop on
   its OpenVINO export (its best CPU setup) on the offline clip (frames/s;
   needs the ``ultralytics`` extra);
3. khupho offline: ``khupho analyze`` (decode, preprocess, inference,
   postprocess, tracking, rules) on the same clip, automatic runtime
   (frames/s and ms per stage);
4. khupho live capacity: the largest number of replayed cameras (mixed set,
   real rate, 5 analysed frames/s each) with no frame dropped and p95
   frame-to-event latency under 1 s, automatic runtime; CPU and memory;
5. quality: each speed setting (automatic runtime, motion gate, reuse)
   against the onnxruntime fp32 ungated every-analysed-frame reference:
   line-count deviation, missed and extra intrusion/loitering/crowding events,
   inference calls saved;
6. the CUDA execution provider, when onnxruntime has it.

Offline and peer run alternately ``repeats`` times and the medians are
reported with the spread; the machine's load average before and after is
recorded, since other work on a shared machine slows everything.
``--quick`` shrinks every stage (image size 320, short slices, short live
trials) to finish in about two minutes; its figures are for testing the
benchmark, not for quoting.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks import limit as limit_mod
from benchmarks.int8 import bench_cache
from benchmarks.live import probe_memory, rss_mb, search_capacity
from benchmarks.quality import Deviation, detect_clip, replay
from benchmarks.report import render_table, write_chart
from benchmarks.scenes import MIXED_SET, OFFLINE_CLIP, trimmed

log = logging.getLogger(__name__)

LIVE_FPS = 5.0


# The runtime row: every runtime and precision the detector has, with parity F1 next to each.
RUNTIMES = (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"))


@dataclass(frozen=True)
class Profile:
    """How much of everything a run measures."""

    imgsz: int
    offline_frames: int  # frames of the offline clip for rows 2 and 3
    repeats: int  # rounds of offline, peer and limit, alternating
    limit_seconds: float  # per batch size and round
    limit_batches: tuple[int, ...]
    offline_batch: int
    # Session options tried against the default at batch ``offline_batch``, within the same rounds.
    session_variants: dict[str, dict[str, Any]]
    quality_seconds: float  # first seconds of each mixed-set clip
    int8_calibration_frames: int
    parity_every: int  # every n-th reference item for each runtime's parity F1
    live_settle_s: float
    live_window_s: float
    live_max_cameras: int
    memory_cameras: int  # 720p cameras in the memory probe (compared with one)
    runtimes: tuple[tuple[str, str], ...] = ()  # the runtime row's runtimes and precisions


FULL = Profile(
    imgsz=640,
    offline_frames=120,
    repeats=4,
    limit_seconds=1.0,
    limit_batches=(1, 2, 4, 8),
    offline_batch=2,
    session_variants={
        "no spinning (the service's setting)": {"allow_spinning": False},
        "one intra-op thread": {"intra_op_threads": 1},
        "basic graph optimization": {"graph_optimization": "basic"},
        "IO binding": {"io_binding": True},
    },
    quality_seconds=30.0,
    int8_calibration_frames=300,
    parity_every=1,
    live_settle_s=4.0,
    live_window_s=20.0,
    live_max_cameras=24,
    memory_cameras=4,
    runtimes=RUNTIMES,
)
QUICK = Profile(
    imgsz=320,
    offline_frames=48,
    repeats=2,
    limit_seconds=0.5,
    limit_batches=(1, 2),
    offline_batch=2,
    session_variants={"no spinning (the service's setting)": {"allow_spinning": False}},
    quality_seconds=6.0,
    int8_calibration_frames=8,
    parity_every=12,
    live_settle_s=2.0,
    live_window_s=5.0,
    live_max_cameras=4,
    memory_cameras=2,
    runtimes=RUNTIMES[:3],  # int8's NNCF calibration alone would take most of the quick run
)


@dataclass
class BenchOptions:
    model: Path
    shared: Path
    out: Path = Path("out/bench")
    quick: bool = False
    imgsz: int | None = None  # None: the profile's
    peer: bool = True
    cache: Path | None = None
    detector: dict[str, Any] = field(default_factory=dict)  # DetectorConfig fields beyond imgsz

    @property
    def profile(self) -> Profile:
        base = QUICK if self.quick else FULL
        if self.imgsz is None:
            return base
        return Profile(**{**asdict(base), "imgsz": self.imgsz})


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> float:
    """Half the range, relative to the median: the noise between repeats."""
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / 2 / statistics.median(values)


def run(opts: BenchOptions) -> dict[str, Any]:
    """Run every row, write ``bench.json``, ``bench.md`` and ``bench.png`` into ``opts.out``."""
    from detectors import DetectorConfig, YoloOnnxDetector, choose_runtime, open_detector

    prof = opts.profile
    footage = opts.shared / "footage"
    cache = opts.cache or bench_cache()
    t_start = time.monotonic()
    load_before = os.getloadavg()
    # The service's detector settings (live, quality); offline and the limit use those of
    # ``khupho analyze``, which owns the cores and lets onnxruntime's threads spin.
    det_cfg = DetectorConfig(imgsz=prof.imgsz, **opts.detector)
    offline_cfg = det_cfg.model_copy(update={"allow_spinning": True, **opts.detector})
    choice = choose_runtime(det_cfg)
    _say(f"[bench] automatic runtime: {choice.runtime} {choice.precision} ({choice.reason})")
    result: dict[str, Any] = {
        "auto": {"runtime": choice.runtime, "precision": choice.precision, "reason": choice.reason},
        "profile": "quick" if opts.quick else "full",
        "settings": asdict(prof),
        "model": str(opts.model),
        "imgsz": prof.imgsz,
        "detector": det_cfg.model_dump(mode="json"),
        "offline_detector": offline_cfg.model_dump(mode="json"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
            "load_before": [round(x, 2) for x in load_before],
        },
    }

    # -- rows 1-3: limit, peer, offline on one slice of one clip -------------------------------------
    # Rounds alternate limit, offline and peer, and every offline run sits between two limit
    # sweeps: on a shared machine the load drifts, and each ratio is taken within its round.
    clip = trimmed(footage / OFFLINE_CLIP, prof.offline_frames, cache)
    detector = open_detector(opts.model, offline_cfg)
    shape = detector.letterbox_for(480, 640).input_shape
    # Session options are onnxruntime's: compared with onnxruntime's default, whatever auto picked.
    ort_cfg = offline_cfg.model_copy(update={"runtime": "onnxruntime", "precision": "fp32"})
    ort_default = detector if detector.runtime == "onnxruntime" else YoloOnnxDetector(opts.model, ort_cfg)
    variants = {
        name: YoloOnnxDetector(opts.model, ort_cfg.model_copy(update=update))
        for name, update in prof.session_variants.items()
    }
    variant_runs: dict[str, list[float]] = {name: [] for name in variants}
    default_runs: list[float] = []

    def sweep() -> dict[int, float]:
        by_batch = limit_mod.sweep(detector, shape, prof.limit_batches, prof.limit_seconds)
        # Each variant next to a fresh default measurement at the offline batch size.
        for name, other in variants.items():
            b = prof.offline_batch
            default_runs.append(limit_mod.images_per_second(ort_default, shape, b, prof.limit_seconds))
            variant_runs[name].append(limit_mod.images_per_second(other, shape, b, prof.limit_seconds))
        return by_batch

    sweeps = [sweep()]
    offline: list[dict[str, Any]] = []
    peers = {name: _Peer(name) for name in PEERS}
    if opts.peer:
        _start_peers(peers, opts, clip, prof, cache)
    else:
        for p in peers.values():
            p.error = "not run (--no-peer)"
    try:
        for r in range(prof.repeats):
            _say(
                f"[bench] round {r + 1}/{prof.repeats}: offline, peers, limit ({prof.offline_frames} frames)"
            )
            offline.append(_offline(clip, detector, prof))
            for p in peers.values():
                p.measure()
            sweeps.append(sweep())
    finally:
        for p in peers.values():
            p.close()
    limit_by_batch = {b: _median([sw[b] for sw in sweeps]) for b in prof.limit_batches}
    best_batch = max(limit_by_batch, key=lambda b: limit_by_batch[b])
    limit_ips = limit_by_batch[best_batch]
    # The limit around each offline round: the mean of the sweeps before and after it.
    around = [(sweeps[i][best_batch] + sweeps[i + 1][best_batch]) / 2 for i in range(prof.repeats)]
    offline_runs = [o["fps"] for o in offline]
    offline_fps = _median(offline_runs)
    stages = {k: _median([o["ms_per_frame"][k] for o in offline]) for k in offline[0]["ms_per_frame"]}
    # The peer to beat is its best setup in this run; ratios are taken round by round against it.
    measured = [p for p in peers.values() if p.runs]
    best_peer = max(measured, key=lambda p: _median(p.runs)) if measured else None
    peer = best_peer.runs if best_peer else []
    result["limit"] = {
        "runtime": f"{detector.runtime} {detector.precision}",
        "images_per_s": limit_ips,
        "best_batch": best_batch,
        "input_shape": list(shape),
        "by_batch": limit_by_batch,
        "runs": [sw[best_batch] for sw in sweeps],
        "spread": _spread([sw[best_batch] for sw in sweeps]),
    }
    result["session_variants"] = {
        name: {
            "update": prof.session_variants[name],
            "images_per_s": _median(runs),
            "vs_default": _median(runs) / _median(default_runs[i :: len(variants)]),
        }
        for i, (name, runs) in enumerate(variant_runs.items())
    }
    result["model_load"] = _load_times(opts.model, ort_cfg, cache)
    variants.clear()  # their sessions are not needed any more
    ort_default = None
    result["runtimes"] = _runtimes(opts, prof, footage, offline_cfg, shape, cache, detector)
    result["offline"] = {
        "frames_per_s": offline_fps,
        "frames": prof.offline_frames,
        "clip": OFFLINE_CLIP,
        "batch": prof.offline_batch,
        "ms_per_frame": stages,
        "spread": _spread(offline_runs),
        "runs": offline_runs,
        "vs_limit_by_round": [o / lim for o, lim in zip(offline_runs, around, strict=True)],
        "vs_peer_by_round": [o / p for o, p in zip(offline_runs, peer, strict=False)],
    }
    result["peers"] = {name: p.summary() for name, p in peers.items()}
    result["peer"] = (
        {**best_peer.summary(), "name": best_peer.name}
        if best_peer
        else {"error": "; ".join(f"{p.name}: {p.error}" for p in peers.values())}
    )

    # -- row 5: quality of each speed setting (and the speeds behind row 4's first guess) ------------
    # The reference is onnxruntime fp32; "auto" is what the service runs by default.
    fp32_cfg = det_cfg.model_copy(update={"runtime": "onnxruntime", "precision": "fp32"})
    models = {"fp32": (opts.model, fp32_cfg), "auto": (opts.model, det_cfg)}
    quality = _quality(prof, footage, models)
    auto_key = f"{choice.runtime} {choice.precision}"
    for q in quality["settings"].values():
        runtime_key = auto_key if q["model"] == "auto" else "onnxruntime fp32"
        q["parity_f1"] = result["runtimes"][runtime_key]["parity_f1"]
    result["quality"] = quality

    # -- row 4: live capacity, as the service runs by default and at the fastest setting that keeps
    # the quality targets --------------------------------------------------------------------------
    settings = quality["settings"]
    fast = next((k for k in FAST_CANDIDATES if _quality_ok(settings[k])), FAST_CANDIDATES[0])
    result["live"] = {}
    default = result["live"][DEFAULT_SETTING] = _live(
        prof, footage, models, DEFAULT_SETTING, settings[DEFAULT_SETTING], None
    )
    # The fast setting's first guess: the default's capacity scaled by the inference it spares.
    share = settings[DEFAULT_SETTING]["inferred_share"] / max(settings[fast]["inferred_share"], 0.05)
    guess = round(max(1, default["cameras"]) * share)
    result["live"][fast] = _live(prof, footage, models, fast, settings[fast], guess)
    _say(f"[bench] memory: 1 vs {prof.memory_cameras} cameras of 720p")
    result["memory"] = _memory(prof, footage, models)

    # -- row 6: CUDA ----------------------------------------------------------------------------------
    result["cuda"] = _cuda(opts, prof, footage, det_cfg, quality["settings"][DEFAULT_SETTING])

    result["targets"] = _targets(result)
    result["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.monotonic() - t_start, 1)
    opts.out.mkdir(parents=True, exist_ok=True)
    table = render_table(result)
    (opts.out / "bench.json").write_text(json.dumps(result, indent=2, default=_json_default))
    (opts.out / "bench.md").write_text(table + "\n")
    write_chart(result, opts.out / "bench.png")
    result["table"] = table
    return result


def _load_times(model: Path, det_cfg: Any, cache: Path) -> dict[str, float]:
    """Seconds to open the detector: from the ONNX file, and from onnxruntime's optimized graph
    cached on disk (written by the first open)."""
    from detectors import YoloOnnxDetector

    folder = cache / "ort-optimized"
    for f in folder.glob("*.opt.onnx"):
        f.unlink()
    times = {}
    for name, cfg in (
        ("plain", det_cfg),
        ("writing_cache", det_cfg.model_copy(update={"optimized_model_cache": folder})),
        ("from_cache", det_cfg.model_copy(update={"optimized_model_cache": folder})),
    ):
        t0 = time.perf_counter()
        YoloOnnxDetector(model, cfg)
        times[name] = time.perf_counter() - t0
    return times


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _offline(clip: Path, detector: Any, prof: Profile) -> dict[str, Any]:
    """``khupho analyze`` on the slice: every frame, batch ``offline_batch``, the traffic camera's rules."""
    from events.config import CameraEventsConfig
    from ingest import VideoSource
    from pipeline.analyze import analyze_video

    first = next(iter(VideoSource(clip)))
    detector.detect([first.image] * prof.offline_batch)  # warm-up: arenas sized, kernels chosen
    rules = CameraEventsConfig(rules=MIXED_SET[0].rules)
    with tempfile.TemporaryDirectory(prefix="khupho-bench-") as out:
        s = analyze_video(
            clip, detector, Path(out), batch_size=prof.offline_batch, progress=False, rules=rules
        )
    n = max(1, s.frames_analysed)
    ms = {k: 1000.0 * v / n for k, v in s.stage_seconds.items()}
    ms["total"] = 1000.0 * s.seconds / n
    return {"fps": s.analysed_fps, "ms_per_frame": ms}


# Speed settings: (model, gate), models being "fp32" (onnxruntime fp32) and "auto" (what
# ``detector.runtime: auto`` picks). The first is the reference every other one is compared with.
SETTINGS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "fp32": ("fp32", None),
    "fp32+gate": ("fp32", {}),
    "auto": ("auto", None),
    "auto+gate": ("auto", {}),
    "auto+gate+reuse": ("auto", {"still_tracks": "reuse"}),
}
DEFAULT_SETTING = "auto+gate"  # what ``khupho run`` does with a camera's default config
FAST_CANDIDATES = ("auto+gate+reuse",)  # fastest first
MAX_COUNT_DEVIATION = 0.03


def _quality_ok(q: dict[str, Any]) -> bool:
    """The issue's quality bar: line counts within 3 % and no missed intrusion event."""
    return q["count_deviation"] <= MAX_COUNT_DEVIATION and not q["missed_events"].get("zone_intrusion", 0)


# -- peers ------------------------------------------------------------------------------------------

PEERS = ("ultralytics onnx", "ultralytics openvino")


class _Peer:
    """One Ultralytics setup measured in every round (or the reason it is not)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: Any = None
        self.runs: list[float] = []
        self.error: str | None = None

    def measure(self) -> None:
        if self.proc is None or self.error is not None:
            return
        try:
            self.runs.append(self.proc.measure()["fps"])
        except (RuntimeError, OSError, ValueError) as exc:
            self.error = str(exc)
            _say(f"[bench] {self.name} not measured: {exc}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()

    def summary(self) -> dict[str, Any]:
        if not self.runs:
            return {"error": self.error or "not measured"}
        fps = _median(self.runs)
        return {
            "frames_per_s": fps,
            "spread": _spread(self.runs),
            "runs": self.runs,
            "capacity": fps / LIVE_FPS,
        }


def _start_peers(peers: dict[str, _Peer], opts: BenchOptions, clip: Path, prof: Profile, cache: Path) -> None:
    from benchmarks.peer import PeerProcess, openvino_export

    pt = opts.model.with_suffix(".pt")
    for name, peer in peers.items():
        try:
            if name == "ultralytics onnx":
                model = opts.model
            elif not pt.is_file():
                raise RuntimeError(f"no {pt.name} beside the model to export")
            else:
                _say(f"[bench] {name}: exporting a scratch copy of {pt.name}")
                model = openvino_export(pt, prof.imgsz, cache)
            peer.proc = PeerProcess(model, clip, prof.imgsz, prof.offline_frames)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            peer.error = str(exc)
            _say(f"[bench] {name} not measured: {exc}")


# -- runtimes ---------------------------------------------------------------------------------------


def _runtimes(
    opts: BenchOptions,
    prof: Profile,
    footage: Path,
    offline_cfg: Any,
    shape: tuple[int, int],
    cache: Path,
    auto: Any,
) -> dict[str, dict[str, Any]]:
    """Each runtime and precision alone at the offline batch (alternating, ``repeats`` rounds) and
    its parity F1; int8 is NNCF's, built (or taken from the cache) first."""
    from detectors import YoloOnnxDetector
    from detectors.runtime import openvino_installed

    makers: dict[str, Any] = {}  # key -> (config -> detector)
    out: dict[str, dict[str, Any]] = {}
    for runtime, precision in prof.runtimes:
        key = f"{runtime} {precision}"
        out[key] = {}  # rows in the order of ``prof.runtimes``
        if runtime == "openvino" and not openvino_installed():
            out[key] = {"error": "openvino not installed"}
            continue
        if precision == "int8" and importlib.util.find_spec("nncf") is None:
            out[key] = {"error": "nncf not installed (the int8 extra)"}
            continue
        if runtime == "onnxruntime":
            makers[key] = lambda cfg: YoloOnnxDetector(opts.model, cfg)
            continue
        from detectors.yolo_openvino import YoloOpenVinoDetector

        model, build_s = opts.model, None
        if precision == "int8":
            from benchmarks.int8_openvino import quantize

            model, build_s = quantize(
                opts.model, footage, frames=prof.int8_calibration_frames, imgsz=prof.imgsz
            )
            _say(f"[bench] NNCF int8 model {model.name} ({f'{build_s:.0f} s' if build_s else 'cached'})")
        makers[key] = lambda cfg, m=model, p=precision: YoloOpenVinoDetector(m, cfg, p)
        out[key] = {"model": str(model), "build_seconds": build_s}
    detectors = {key: make(offline_cfg) for key, make in makers.items()}
    runs: dict[str, list[float]] = {k: [] for k in detectors}
    for r in range(prof.repeats):
        _say(f"[bench] runtimes round {r + 1}/{prof.repeats}")
        for key, det in detectors.items():
            runs[key].append(limit_mod.images_per_second(det, shape, prof.offline_batch, prof.limit_seconds))
    auto_key = f"{auto.runtime} {auto.precision}"
    for key, det in detectors.items():
        _say(f"[bench] parity F1: {key}")
        out[key] = {
            **out.get(key, {}),
            "images_per_s": _median(runs[key]),
            "runs": runs[key],
            "batch": prof.offline_batch,
            "parity_f1": _parity(makers[key], offline_cfg, opts.shared, prof),
            "auto": key == auto_key,
        }
        det.close()
    return out


def _quality(prof: Profile, footage: Path, models: dict[str, tuple[Path, Any]]) -> dict[str, Any]:
    """Detect every analysed frame of the mixed set with each model, then replay the events stage
    for every setting; the fp32 ungated replay is the reference."""
    from detectors import open_detector
    from ingest.motion import MotionConfig

    clips: dict[str, list[Any]] = {}
    speed: dict[str, float] = {}
    for name, (path, cfg) in models.items():
        _say(f"[bench] quality: {name} on the mixed set ({prof.quality_seconds:.0f} s of each clip)")
        detector = open_detector(path, cfg)
        runs = [
            detect_clip(cam, detector, footage, LIVE_FPS, prof.quality_seconds, MotionConfig())
            for cam in MIXED_SET
        ]
        speed[name] = sum(len(r.pts) for r in runs) / sum(r.inference_seconds for r in runs)
        clips[name] = runs
    reference = {r.camera.name: replay(r, None) for r in clips["fp32"]}
    out: dict[str, Any] = {}
    for key, (model, gate) in SETTINGS.items():
        cfg = MotionConfig(**gate) if gate is not None else None
        dev = Deviation()
        per_camera = {}
        for r in clips[model]:
            got = replay(r, cfg)
            dev.add(reference[r.camera.name], got)
            per_camera[r.camera.name] = {"frames": got.frames, "inferred": got.inferred}
        out[key] = {
            "model": model,
            "gate": gate,
            "detect_images_per_s": speed[model],
            "frames": dev.frames,
            "inferred": dev.inferred,
            "inferred_share": dev.inferred_share,
            "per_camera": per_camera,
            "reference_count": dev.reference_count,
            "count_deviation": dev.count_deviation,
            "per_class": dev.per_class,
            "reference_events": dict(dev.events),
            "missed_events": dict(dev.missed),
            "extra_events": dict(dev.extra),
        }
        out[key]["meets_quality"] = _quality_ok(out[key])
    frames = sum(len(r.pts) for r in clips["fp32"])
    motion_ms = 1000.0 * sum(r.motion_seconds for r in clips["fp32"]) / max(1, frames)
    return {"settings": out, "motion_ms_per_frame": motion_ms, "seconds_per_clip": prof.quality_seconds}


def _parity(make: Any, cfg: Any, shared: Path, prof: Profile) -> float:
    """Parity F1 against Ultralytics' fp32 reference at 640 (every ``parity_every``-th item) of the
    detector ``make(config)`` builds at the reference's size and thresholds."""
    from benchmarks.matching import MatchTally
    from benchmarks.parity import load_pictures

    detector = make(cfg.model_copy(update={"imgsz": 640, "conf": 0.25, "iou": 0.7, "classes": None}))
    ref = json.loads((shared / "reference/ultralytics_yolov8n_640.json").read_text())
    items = ref["items"][:: prof.parity_every]
    tally = MatchTally()
    import numpy as np

    for i, image in load_pictures(shared, items):
        det = detector.detect([image])[0]
        rows = np.column_stack((det.xyxy, det.confidence, det.class_id)).astype(np.float64)
        tally.add(rows, np.asarray(items[i]["boxes"], np.float64))
    return tally.f1


def _live(
    prof: Profile,
    footage: Path,
    models: dict[str, tuple[Path, Any]],
    key: str,
    quality: dict[str, Any],
    guess: int | None,
) -> dict[str, Any]:
    """The capacity search for one setting, from ``guess`` or one made from its quality run."""
    from ingest.motion import MotionConfig

    _say(f"[bench] live capacity: {key}")
    model, gate = SETTINGS[key]
    path, cfg = models[model]
    detector = {"model": str(path), **cfg.model_dump(mode="json", exclude={"model"})}
    motion = MotionConfig(**gate).model_dump(mode="json") if gate is not None else None
    if guess is None:
        # Inference alone at the mixed set's speed, with the gate's savings, less 30 % for decoding,
        # tracking and the rest.
        share = max(quality["inferred_share"], 0.05)
        guess = int(0.7 * quality["detect_images_per_s"] / (LIVE_FPS * share))
    cap = search_capacity(
        MIXED_SET,
        footage,
        detector,
        motion,
        start=max(1, guess),
        max_cameras=prof.live_max_cameras,
        log=_say,
        fps=LIVE_FPS,
        settle_s=prof.live_settle_s,
        window_s=prof.live_window_s,
    )
    best = next((t for t in cap.trials if t.cameras == cap.cameras), None)
    return {
        "setting": key,
        "cameras": cap.cameras,
        "fps_per_camera": LIVE_FPS,
        "first_guess": guess,
        "trials": [asdict(t) for t in cap.trials],
        "p95_latency_s": best.p95_latency_s if best else None,
        "cpu_percent": best.cpu_percent if best else None,
        "rss_mb": best.rss_mb if best else None,
        "inferred_share": best.inferred / best.analysed if best and best.analysed else None,
        "meets_quality": quality["meets_quality"],
    }


def _memory(prof: Profile, footage: Path, models: dict[str, tuple[Path, Any]]) -> dict[str, Any]:
    """RSS of a fresh service process with one 720p camera and with ``memory_cameras`` of them
    (night lane and plaza alternating): the difference per added camera. Detections are reused on
    still frames so that four such cameras stay within the machine's capacity: an overloaded
    service holds full queues, memory that a correctly sized one does not."""
    from ingest.motion import MotionConfig

    path, cfg = models["auto"]
    detector = {"model": str(path), **cfg.model_dump(mode="json", exclude={"model"})}
    motion = MotionConfig(still_tracks="reuse").model_dump(mode="json")
    lane = next(c for c in MIXED_SET if c.name == "night_lane")
    plaza = next(c for c in MIXED_SET if c.name == "plaza")
    one = probe_memory((lane, plaza), 1, footage, detector, motion)
    many = probe_memory((lane, plaza), prof.memory_cameras, footage, detector, motion)
    return {
        "rss_one_720p_mb": one,
        "rss_many_720p_mb": many,
        "cameras": prof.memory_cameras,
        "per_additional_720p_camera_mb": (many - one) / max(1, prof.memory_cameras - 1),
        "bench_process_rss_mb": rss_mb(),
    }


def _cuda(
    opts: BenchOptions, prof: Profile, footage: Path, det_cfg: Any, quality: dict[str, Any]
) -> dict[str, Any]:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return {"available": False, "reason": "onnxruntime has no CUDAExecutionProvider"}
    from detectors import YoloOnnxDetector

    cfg = det_cfg.model_copy(update={"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]})
    detector = YoloOnnxDetector(opts.model, cfg)
    shape = detector.letterbox_for(480, 640).input_shape
    by_batch = limit_mod.sweep(detector, shape, (1, 4, 8, 16), prof.limit_seconds)
    best = max(by_batch, key=lambda b: by_batch[b])
    detector_cfg = {"model": str(opts.model), **cfg.model_dump(mode="json", exclude={"model"})}
    from ingest.motion import MotionConfig

    guess = int(0.8 * by_batch[best] / LIVE_FPS / max(quality["inferred_share"], 0.05))
    cap = search_capacity(
        MIXED_SET,
        footage,
        detector_cfg,
        MotionConfig().model_dump(mode="json"),
        start=max(1, min(guess, 64)),
        max_cameras=64,
        log=_say,
        fps=LIVE_FPS,
        settle_s=prof.live_settle_s,
        window_s=prof.live_window_s,
    )
    return {
        "available": True,
        "images_per_s": by_batch[best],
        "best_batch": best,
        "by_batch": by_batch,
        "cameras": cap.cameras,
        "trials": [asdict(t) for t in cap.trials],
    }


def _targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its measured value (ratios from this run)."""
    out = []
    off = r["offline"]
    out.append(_target("offline / limit", _median(off["vs_limit_by_round"]), 0.9))
    peer = r["peer"].get("frames_per_s")
    out.append(_target("offline / peer", _median(off["vs_peer_by_round"]) if peer else None, 1.5))
    for key, live in r["live"].items():
        out.append(_target(f"live cameras ({key})", float(live["cameras"]), 16.0))
        ratio = live["cameras"] / (peer / LIVE_FPS) if peer else None
        out.append(_target(f"live capacity / peer capacity ({key})", ratio, 1.75))
        q = r["quality"]["settings"][key]
        dev = q["count_deviation"]
        out.append(_target(f"line-count deviation ({key})", dev, MAX_COUNT_DEVIATION, lower_is_better=True))
        missed = float(q["missed_events"].get("zone_intrusion", 0))
        out.append(_target(f"missed intrusion events ({key})", missed, 0.0, lower_is_better=True))
    auto = next((v for v in r["runtimes"].values() if v.get("auto")), None)
    out.append(_target("default precision parity F1", auto["parity_f1"] if auto else None, 0.98))
    mem = r["memory"]["per_additional_720p_camera_mb"]
    out.append(_target("RSS per additional 720p camera (MB)", mem, 40.0, lower_is_better=True))
    return out


def _target(name: str, value: float | None, goal: float, lower_is_better: bool = False) -> dict[str, Any]:
    met = None if value is None else (value <= goal if lower_is_better else value >= goal)
    return {"target": name, "value": value, "goal": goal, "lower_is_better": lower_is_better, "met": met}


def main(argv: list[str] | None = None) -> int:
    from api.demo import shared_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, default=None, help="default: $KHUPHO_SHARED/models/yolov8n-coco.onnx"
    )
    ap.add_argument("--shared", type=Path, default=None, help="shared assets (footage, reference)")
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    ap.add_argument("--quick", action="store_true", help="a two-minute run for tests (imgsz 320, short)")
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args(argv)
    shared = args.shared or shared_dir()
    result = run(
        BenchOptions(
            model=args.model or shared / "models/yolov8n-coco.onnx",
            shared=shared,
            out=args.out,
            quick=args.quick,
            imgsz=args.imgsz,
            peer=not args.no_peer,
        )
    )
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
