"""Parity with Ultralytics: run khupho's detector on every item of the reference and compare.

    python -m benchmarks.parity --model M --reference ../shared/reference/ultralytics_yolov8n_640.json \
        --out P.json [--min-f1 0.99] [--runtime auto|onnxruntime|openvino] [--precision auto|fp32|bf16]

Images are read with OpenCV; clip frames are decoded with PyAV
(``to_ndarray(format="bgr24")``) at the frame index the reference gives. The
last line printed is ``parity F1=<f> meanIoU=<f> items=<n>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.matching import MatchTally
from detectors import DetectorConfig, open_detector


def load_pictures(root: Path, items: list[dict]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(item index, BGR picture)`` for every reference item, decoding each clip once."""
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_source[item["source"]].append(i)
    for source, members in by_source.items():
        path = root / source
        if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}:
            image = cv2.imread(str(path))
            if image is None:
                raise SystemExit(f"cannot read image {path}")
            for i in members:
                yield i, image
            continue
        wanted: dict[int, list[int]] = defaultdict(list)
        for i in members:
            wanted[int(items[i]["frame"])].append(i)
        last = max(wanted)
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    image = frame.to_ndarray(format="bgr24")
                    for i in wanted[index]:
                        yield i, image
                if index >= last:
                    break
        missing = [f for f in wanted if f > index]
        if missing:
            raise SystemExit(f"{path}: ended at frame {index}, reference wants frames {missing}")


def run(
    model: Path,
    reference: Path,
    root: Path,
    imgsz: int,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    every: int = 1,
) -> tuple[dict, MatchTally]:
    """Detect every ``every``-th reference item; the tally compares them with the reference."""
    ref = json.loads(reference.read_text())
    items = ref["items"][::every]
    config = DetectorConfig(imgsz=imgsz, conf=0.25, iou=0.7, runtime=runtime, precision=precision)
    detector = open_detector(model, config)
    out_items: list[dict | None] = [None] * len(items)
    tally = MatchTally()
    for i, image in load_pictures(root, items):
        det = detector.detect([image])[0]
        rows = np.column_stack((det.xyxy, det.confidence, det.class_id)).astype(np.float64)
        tally.add(rows, np.asarray(items[i]["boxes"], np.float64))
        out_items[i] = {
            "source": items[i]["source"],
            "frame": items[i]["frame"],
            "shape": [int(image.shape[0]), int(image.shape[1])],
            "boxes": [[round(float(v), 2) for v in r[:5]] + [int(r[5])] for r in rows],
        }
    result = {
        "generator": f"khupho {type(detector).__name__}({model.name}, {detector.runtime} "
        f"{detector.precision}, imgsz={imgsz}, conf=0.25, iou=0.7)",
        "box_format": ref.get("box_format", "x1,y1,x2,y2 in source-frame pixels, conf, class_id"),
        "names": {str(k): v for k, v in detector.names.items()},
        "items": out_items,
    }
    return result, tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument(
        "--root",
        type=Path,
        help="folder the reference's sources are relative to (default: the reference file's parent's parent)",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--min-f1", type=float, default=0.0)
    ap.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default="onnxruntime")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32")
    args = ap.parse_args(argv)
    root = args.root or args.reference.resolve().parent.parent
    result, tally = run(args.model, args.reference, root, args.imgsz, args.runtime, args.precision)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result))
    print(f"matched {tally.tp}, extra {tally.fp}, missed {tally.fn}")
    print(f"parity F1={tally.f1:.4f} meanIoU={tally.mean_iou:.4f} items={len(result['items'])}")
    if tally.f1 < args.min_f1:
        print(f"F1 {tally.f1:.4f} is below --min-f1 {args.min_f1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
