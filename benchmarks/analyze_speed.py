"""``khupho analyze`` against Ultralytics' ``YOLO(model).predict(stream=True)`` on the same file, same run.

    python -m benchmarks.analyze_speed --video ../shared/footage/traffic_intersection_cctv_640x480_h264.mp4 \
        --model ../shared/models/yolov8n-coco.onnx [--frames 300] [--repeats 1]

Both analyse every frame at the same image size from the same ONNX model; the
peer needs the ``ultralytics`` extra. Prints one table: frames/s (median of
repeats) and khupho / peer.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scenes import trimmed


def khupho_fps(video: Path, model: Path, imgsz: int, frames: int, batch: int) -> float:
    from detectors import DetectorConfig, YoloOnnxDetector
    from pipeline.analyze import analyze_video

    clip = trimmed(video, frames)
    detector = YoloOnnxDetector(model, DetectorConfig(imgsz=imgsz))
    with tempfile.TemporaryDirectory() as out:
        summary = analyze_video(clip, detector, Path(out), batch_size=batch, progress=False)
    return summary.analysed_fps


def ultralytics_fps(video: Path, model: Path, imgsz: int, frames: int) -> float:
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    stream = yolo.predict(str(video), imgsz=imgsz, stream=True, verbose=False, conf=0.25, iou=0.7)
    next(stream)  # model load and warm-up are not part of the rate, as for khupho's session set-up
    t0 = time.perf_counter()
    n = sum(1 for _ in itertools.islice(stream, frames - 1))
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    ours = [
        khupho_fps(args.video, args.model, args.imgsz, args.frames, args.batch) for _ in range(args.repeats)
    ]
    try:
        peer = [ultralytics_fps(args.video, args.model, args.imgsz, args.frames) for _ in range(args.repeats)]
    except ImportError:
        peer = []
    k = statistics.median(ours)
    print(f"| pipeline (imgsz {args.imgsz}, {args.frames} frames of {args.video.name}) | frames/s | x peer |")
    print("|---|---:|---:|")
    if peer:
        p = statistics.median(peer)
        print(f"| Ultralytics YOLO(onnx).predict(stream=True) | {p:.1f} | 1.00 |")
        print(f"| khupho analyze (decode, detect, track), batch {args.batch} | {k:.1f} | {k / p:.2f} |")
    else:
        print("| Ultralytics peer | not installed (pip install 'khupho[ultralytics]') | - |")
        print(f"| khupho analyze (decode, detect, track), batch {args.batch} | {k:.1f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
