"""``khupho bench``: the quick run produces every row with numbers, ratios from the same run, a chart.

The quick profile's figures are not asserted (a shared 2-core machine makes them
noisy); its structure and internal consistency are.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import av
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from api.cli import app
from benchmarks.quality import Deviation, Outcome, match_events
from benchmarks.scenes import MIXED_SET, trimmed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def targets_value(data: dict, name: str) -> float | None:
    return next(t["value"] for t in data["targets"] if t["target"] == name)


def _number(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_events_match_by_rule_and_overlapping_time() -> None:
    ref = [("zone", "zone_intrusion", 10.0, 14.0), ("zone", "zone_intrusion", 30.0, 31.0)]
    got = [
        ("zone", "zone_intrusion", 14.5, 16.0),  # starts within the slack after the first ends
        ("other", "zone_intrusion", 30.0, 31.0),  # same time, other rule: no match
    ]
    missed, extra = match_events(ref, got)
    assert missed == [("zone", "zone_intrusion", 30.0, 31.0)]
    assert extra == [("other", "zone_intrusion", 30.0, 31.0)]


def test_each_event_matches_once() -> None:
    ref = [("z", "loitering", 0.0, 5.0), ("z", "loitering", 1.0, 6.0)]
    missed, extra = match_events(ref, [("z", "loitering", 0.5, 5.5)])
    assert len(missed) == 1 and extra == []


def test_count_deviation_is_relative_l1_over_lines_classes_and_directions() -> None:
    ref, got = Outcome(frames=10, inferred=10), Outcome(frames=10, inferred=4)
    ref.counts.update({("l", "car", "in"): 10, ("l", "bus", "out"): 10})
    got.counts.update({("l", "car", "in"): 9, ("l", "truck", "out"): 1, ("l", "bus", "out"): 10})
    dev = Deviation()
    dev.add(ref, got)
    assert dev.reference_count == 20
    assert dev.count_deviation == pytest.approx(2 / 20)  # one car missing, one truck extra
    assert dev.inferred_share == pytest.approx(0.4)
    assert dev.per_class["truck"] == (0, 1)


def test_trimmed_clip_has_the_frames_asked_for(footage_dir: Path, tmp_path: Path) -> None:
    clip = trimmed(footage_dir / MIXED_SET[0].clip, 30, tmp_path)
    with av.open(str(clip)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30
    assert trimmed(footage_dir / MIXED_SET[0].clip, 30, tmp_path) == clip  # cached


@pytest.mark.slow
def test_quick_bench_has_every_row(tmp_path: Path, shared_dir: Path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--quick", "--out", str(out), "--shared", str(shared_dir)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    table = (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:8] == PNG_MAGIC
    assert table.strip() in result.output

    # Rows 1-3: numbers, and the ratios are the medians of ratios taken within each round.
    assert _number(data["limit"]["images_per_s"]) and data["limit"]["images_per_s"] > 0
    assert str(data["limit"]["best_batch"]) in data["limit"]["by_batch"]  # JSON keys are strings
    off = data["offline"]
    assert _number(off["frames_per_s"]) and off["frames_per_s"] > 0
    assert {"decode", "preprocess", "inference", "postprocess", "track", "rules"} <= set(off["ms_per_frame"])
    assert _number(data["peer"]["frames_per_s"]), data["peer"]
    # Both Ultralytics setups, the best of them the peer the ratios use.
    peers = data["peers"]
    assert set(peers) == {"ultralytics onnx", "ultralytics openvino"}
    assert all(_number(p["frames_per_s"]) for p in peers.values()), peers
    assert data["peer"]["frames_per_s"] == max(p["frames_per_s"] for p in peers.values())
    # Every runtime and precision with its parity F1; the automatic choice is marked and kept parity.
    runtimes = data["runtimes"]
    assert {"onnxruntime fp32", "openvino fp32", "openvino bf16"} <= set(runtimes)
    assert sum(bool(r.get("auto")) for r in runtimes.values()) == 1
    for key, r in runtimes.items():
        assert _number(r["images_per_s"]) and r["images_per_s"] > 0, key
        assert 0.5 < r["parity_f1"] <= 1.0, key
    auto = next(r for r in runtimes.values() if r["auto"])
    assert targets_value(data, "default precision parity F1") == auto["parity_f1"]
    assert data["limit"]["runtime"] == f"{data['auto']['runtime']} {data['auto']['precision']}"
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["offline / limit"]["value"] == pytest.approx(statistics.median(off["vs_limit_by_round"]))
    assert targets["offline / peer"]["value"] == pytest.approx(statistics.median(off["vs_peer_by_round"]))
    runs = data["limit"]["runs"]
    assert len(runs) == data["settings"]["repeats"] + 1  # one sweep before each round and one after

    # Row 4: capacity with its trials for the default and the fastest setting, memory per camera.
    peer_capacity = data["peer"]["frames_per_s"] / 5
    assert "auto+gate" in data["live"] and len(data["live"]) == 2
    for key, live in data["live"].items():
        assert isinstance(live["cameras"], int) and live["trials"]
        ratio = targets[f"live capacity / peer capacity ({key})"]["value"]
        assert ratio == pytest.approx(live["cameras"] / peer_capacity)
    assert _number(data["memory"]["per_additional_720p_camera_mb"])

    # Row 5: every speed setting against the reference; the reference against itself is exact.
    q = data["quality"]["settings"]
    for key in ("fp32", "fp32+gate", "auto", "auto+gate", "auto+gate+reuse"):
        assert _number(q[key]["count_deviation"]) and _number(q[key]["detect_images_per_s"])
        assert 0 < q[key]["inferred"] <= q[key]["frames"]
    assert q["fp32"]["count_deviation"] == 0 and not q["fp32"]["missed_events"]
    assert q["fp32"]["inferred"] == q["fp32"]["frames"]
    assert q["auto+gate+reuse"]["inferred"] <= q["auto+gate"]["inferred"] <= q["auto"]["inferred"]
    assert q["fp32+gate"]["inferred"] <= q["fp32"]["inferred"]
    assert q["auto"]["parity_f1"] == auto["parity_f1"]

    # Row 6: CUDA is measured where onnxruntime has it, and said not to be otherwise.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert _number(data["cuda"]["images_per_s"])
    else:
        assert "not available (onnxruntime has no CUDAExecutionProvider)" in table

    for row in ("| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 |"):
        assert row in table
    assert data["seconds"] < 180
