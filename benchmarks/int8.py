"""Static int8 quantization of a YOLO ONNX export, calibrated on frames of the shared footage.

    python -m benchmarks.int8 --model M [--out DIR] [--frames 32]

The calibration frames are letterboxed exactly as the detector letterboxes
them (minimal padding, grey 114, RGB 0..1), so the activation ranges are those
the network sees in service; ranges are min/max with a moving average over
the frames (the calibrator that accepts several input shapes), which clips
rare outliers. Weights are int8 per channel, activations uint8 (QDQ format,
which onnxruntime fuses into integer kernels). The detection head's box
decoding (DFL, anchors, the final concat of pixel boxes with 0..1 scores)
stays float: one shared scale for pixel coordinates and probabilities would
destroy both, and it costs almost nothing; so do the six 1x1 convs that
produce the box distributions and class logits (parity F1 0.908 with them
float, 0.903 quantized, 0.889 without the moving average: docs/notes/bench.md).

The result is cached under ``--out`` (default: the khupho cache) by the source
model's size and modification time and the calibration settings; it is a
build artefact and is never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from detectors.letterbox import InputBuffers, Letterbox
from ingest import VideoSource
from models.resolve import cache_dir

log = logging.getLogger(__name__)

CALIBRATION_CLIPS = (
    "traffic_intersection_cctv_640x480_h264.mp4",
    "traffic_india_junction_motorbikes_640x360_h264.mp4",
    "pedestrians_plaza_overhead_1280x720_h264.mp4",
    "security_residential_lane_night_1280x720_h264.mp4",
    "parking_lot_overhead_768x432_h264.mp4",
    "pedestrians_street_pets_768x576_msmpeg4.avi",
    "traffic_highway_cctv_320x240_mpeg4.avi",
)


def bench_cache() -> Path:
    """Where benchmark artefacts (quantized models, trimmed clips) live: next to the model cache."""
    return cache_dir().parent / "bench"


def calibration_tensors(
    footage: Path, imgsz: int, frames: int, stride: int = 32, clips: Sequence[str] = CALIBRATION_CLIPS
) -> list[np.ndarray]:
    """``frames`` letterboxed input tensors [1, 3, H, W], spread evenly over the clips and over time.

    Every clip gives the same share; within a clip the frames are taken at
    an even pace over its length (one per ``duration / share`` seconds).
    """
    present = [footage / c for c in clips if (footage / c).is_file()]
    if not present:
        raise FileNotFoundError(f"no calibration clip found in {footage}")
    share = max(1, -(-frames // len(present)))
    buffers = InputBuffers()
    out: list[np.ndarray] = []
    for path in present:
        source = VideoSource(path, camera=path.stem)
        duration = source.info.duration or 10.0
        source.close()
        source = VideoSource(path, camera=path.stem, analysis_fps=share / duration)
        for i, frame in enumerate(source):
            if i >= share:
                break
            lb = Letterbox.fit(frame.shape[0], frame.shape[1], (imgsz, imgsz), stride, minimal=True)
            out.append(buffers.fill([frame.image], [lb], 1).copy())
    return out[:frames]


def _float_nodes(model_path: Path, output_convs: bool) -> list[str]:
    """Nodes kept in float: the detection head's box decoding (everything in the last module but
    its two conv branches, ``cv2`` boxes and ``cv3`` classes) and, with ``output_convs``, each
    branch's last 1x1 conv, whose outputs are the box distributions and class logits themselves."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    modules = {n.name.split("/")[1] for n in graph.node if n.name.startswith("/model.")}
    last = max(modules, key=lambda s: int(s.split(".")[1]) if s.split(".")[1].isdigit() else -1)
    prefix = f"/{last}/"
    keep = []
    for n in graph.node:
        if not n.name.startswith(prefix):
            continue
        branch = n.name.split("/")[2]
        in_branch = branch.startswith(("cv2", "cv3"))
        # /model.22/cv3.0/cv3.0.2/Conv: the branch's output conv (no BN, no activation, no "conv/").
        output_conv = in_branch and n.op_type == "Conv" and "/conv/" not in n.name
        if not in_branch or "/dfl/" in n.name or (output_convs and output_conv):
            keep.append(n.name)
    return keep


def quantize(
    model: Path,
    footage: Path,
    *,
    imgsz: int = 640,
    frames: int = 32,
    out_dir: Path | None = None,
    float_output_convs: bool = True,
    moving_average: bool = True,
) -> tuple[Path, float]:
    """The statically quantized model (built, or taken from the cache) and the seconds building took."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_dir = out_dir or bench_cache()
    out_dir.mkdir(parents=True, exist_ok=True)
    st = model.stat()
    stamp = f"{model.resolve()}|{st.st_size}|{st.st_mtime_ns}|{imgsz}|{frames}"
    stamp += f"|{float_output_convs}|{moving_average}"
    key = hashlib.sha1(stamp.encode())
    target = out_dir / f"{model.stem}-int8-static-{key.hexdigest()[:10]}.onnx"
    if target.is_file():
        return target, 0.0
    t0 = time.perf_counter()
    tensors = calibration_tensors(footage, imgsz, frames)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            t = next(self._it, None)
            return None if t is None else {"images": t}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Shape inference and constant folding first, as onnxruntime recommends; symbolic shape
        # inference cannot follow the head's dynamic anchors, ONNX's own inference is enough.
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
        partial = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre),
            str(partial),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # MinMax is the calibrator that accepts tensors of several shapes (one per aspect ratio).
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMovingAverage": moving_average},
            nodes_to_exclude=_float_nodes(pre, float_output_convs),
        )
        partial.replace(target)
    return target, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from api.demo import shared_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--footage", type=Path, default=None, help="default: $KHUPHO_SHARED/footage")
    ap.add_argument("--out", type=Path, default=None, help="default: the khupho bench cache")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--quantize-output-convs", action="store_true", help="the head's last 1x1 convs too")
    ap.add_argument("--no-moving-average", action="store_true", help="plain min/max over all frames")
    args = ap.parse_args(argv)
    path, seconds = quantize(
        args.model,
        args.footage or shared_dir() / "footage",
        imgsz=args.imgsz,
        frames=args.frames,
        out_dir=args.out,
        float_output_convs=not args.quantize_output_convs,
        moving_average=not args.no_moving_average,
    )
    print(f"{path} ({'cached' if seconds == 0 else f'built in {seconds:.1f} s'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
