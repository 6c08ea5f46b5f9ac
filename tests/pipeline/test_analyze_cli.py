"""``khupho analyze`` on every shared clip, through the command line."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.conftest import shared_root

CLIPS = sorted(p.name for p in (shared_root() / "footage").glob("*") if p.suffix in {".mp4", ".avi"})


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIPS)
def test_analyze_every_clip(clip: str, footage_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    video = footage_dir / clip
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        duration = float(s.frames / s.average_rate) if s.frames else float(c.duration / 1e6)
    fps = 1.0
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(video),
            "--model",
            str(models_dir / "yolov8n-coco.onnx"),
            "--fps",
            str(fps),
            "--imgsz",
            "320",
            "--out",
            str(tmp_path),
            *(["--annotate"] if "intersection" in clip else []),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert summary["frames_analysed"] == len(lines)
    assert abs(len(lines) - duration * fps) <= 2, (len(lines), duration)
    pts = [x["pts"] for x in lines]
    assert all(b - a >= 1.0 / fps - 0.05 for a, b in itertools.pairwise(pts))
    assert summary["frames_decoded"] > summary["frames_analysed"]
    assert summary["analysed_fps"] > 0
    assert set(summary["stage_seconds"]) >= {"decode", "preprocess", "inference", "postprocess", "track"}
    if "night" not in clip:  # the quiet night lane has one parked motorbike at most
        assert sum(summary["detections_per_class"].values()) > 0
    if "intersection" in clip:
        assert summary["detections_per_class"].get("car", 0) > 10
        with av.open(str(tmp_path / "annotated.mp4")) as out:
            frames = sum(1 for _ in out.decode(video=0))
        assert frames == len(lines)


def test_analyze_bad_file_is_a_clear_error(tmp_path: Path, models_dir: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    result = CliRunner().invoke(
        app,
        ["analyze", str(bad), "--model", str(models_dir / "yolov8n-coco.onnx"), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert "broken.mp4" in result.output and "error:" in result.output


def test_analyze_missing_model_is_a_clear_error(tmp_path: Path, footage_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(footage_dir / "parking_lot_overhead_768x432_h264.mp4"),
            "--model",
            str(tmp_path / "none.onnx"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "model file not found" in result.output


@pytest.mark.slow
def test_analyze_with_motion_gating_and_rules(footage_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    """The parking lot is empty at times: the gate spares the detector there, the rules still run."""
    import yaml

    from benchmarks.scenes import MIXED_SET, trimmed

    cam = next(c for c in MIXED_SET if c.name == "parking")
    clip = trimmed(footage_dir / cam.clip, 150, tmp_path)  # 12 s
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": cam.rules}))
    summaries = {}
    for gated in (False, True):
        out = tmp_path / ("gated" if gated else "plain")
        args = ["analyze", str(clip), "--model", str(models_dir / "yolov8n-coco.onnx"), "--fps", "5"]
        args += ["--imgsz", "320", "--out", str(out), "--rules", str(rules)]
        result = CliRunner().invoke(app, [*args, "--motion" if gated else "--no-motion"])
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        lines = (out / "detections.jsonl").read_text().splitlines()
        assert len(lines) == summary["frames_analysed"]
        events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
        assert all(e["phase"] in {"start", "update", "end"} for e in events)
        assert {"track", "rules"} <= set(summary["stage_seconds"])
        summaries[gated] = summary
    plain, gated_summary = summaries[False], summaries[True]
    assert plain["frames_inferred"] == plain["frames_analysed"]
    assert gated_summary["frames_analysed"] == plain["frames_analysed"]
    assert gated_summary["frames_inferred"] < plain["frames_analysed"]
    assert "motion" in gated_summary["stage_seconds"]
    assert gated_summary["events_per_type"] == plain["events_per_type"]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_analyze_runs_the_runtime_asked_for(
    runtime: str, footage_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip(runtime)
    video = footage_dir / "traffic_intersection_cctv_640x480_h264.mp4"
    args = ["analyze", str(video), "--model", str(models_dir / "yolov8n-coco.onnx"), "--fps", "2"]
    args += ["--imgsz", "320", "--runtime", runtime, "--precision", "fp32", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, env={"KHUPHO_CACHE": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["detector"] == f"{runtime} fp32"
    assert summary["frames_analysed"] > 0 and summary["detections_per_class"]


def test_analyze_refuses_bf16_on_onnxruntime(footage_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    video = footage_dir / "traffic_intersection_cctv_640x480_h264.mp4"
    args = ["analyze", str(video), "--model", str(models_dir / "yolov8n-coco.onnx")]
    args += ["--runtime", "onnxruntime", "--precision", "bf16", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "precision bf16 needs runtime openvino" in result.output
