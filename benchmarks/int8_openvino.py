"""int8 on OpenVINO, measured: NNCF post-training quantization of the ONNX file, cached on disk.

    python -m benchmarks.int8_openvino --model M [--footage DIR] [--frames 300]

Calibration frames come from the shared footage, letterboxed exactly as the
detector letterboxes them (``benchmarks.int8.calibration_tensors``). As in
Ultralytics' and NNCF's own YOLOv8 recipes, the detection head's decoding stays
in higher precision: every operation of the last module outside its two conv
branches (DFL, anchors, strides, the sigmoid and the final concat of pixel boxes
with 0..1 scores, which one shared scale would ruin) and, by default, each
branch's last 1x1 conv (the box distributions and class logits themselves).
``MIXED`` preset: symmetric weights, asymmetric activations.

The quantized model is an OpenVINO IR under the khupho cache (never next to the
source model), keyed by the source file's size and modification time and the
recipe. Measured (README): parity F1 0.913 and slower than bf16 on this
machine's AMX, so the detector config does not offer int8; ``khupho bench``
measures it in its runtime row (``YoloOpenVinoDetector(ir, precision="int8")``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

RECIPE = "nncf-mixed-head-float-v1"
DEFAULT_FRAMES = 300  # NNCF's default subset size


def int8_cache() -> Path:
    from benchmarks.int8 import bench_cache

    return bench_cache() / "openvino-int8"


def quantized_path(
    model: Path, *, frames: int, imgsz: int, float_output_convs: bool = True, cache: Path | None = None
) -> Path:
    """Where the int8 IR of ``model`` is (or will be) kept."""
    st = model.stat()
    stamp = f"{model.resolve()}|{st.st_size}|{st.st_mtime_ns}|{RECIPE}|{float_output_convs}|{frames}|{imgsz}"
    key = hashlib.sha1(stamp.encode()).hexdigest()[:10]
    return (cache or int8_cache()) / f"{model.stem}-int8-{key}.xml"


def head_scope(model: object, float_output_convs: bool) -> object:
    """NNCF's ignored scope: the head's decoding (and its output convs), found by ONNX node names."""
    import nncf

    names = [op.get_friendly_name() for op in model.get_ordered_ops()]  # type: ignore[attr-defined]
    modules = {n.split("/")[1] for n in names if n.startswith("/model.")}
    last = max(modules, key=lambda s: int(s.split(".")[1]) if s.split(".")[1].isdigit() else -1)
    prefix = f"/{last}/"
    keep = []
    for n in names:
        if not n.startswith(prefix):
            continue
        branch = n.split("/")[2]
        in_branch = branch.startswith(("cv2", "cv3"))
        # /model.22/cv3.0/cv3.0.2/Conv: the branch's output conv (no BN, no activation, no "conv/").
        output_conv = in_branch and "/conv/" not in n and n.endswith("/Conv")
        if not in_branch or (float_output_convs and output_conv):
            keep.append(n)
    return nncf.IgnoredScope(names=keep, types=["Sigmoid"], validate=False)


def quantize(
    model: Path,
    footage: Path,
    *,
    frames: int = DEFAULT_FRAMES,
    imgsz: int = 640,
    float_output_convs: bool = True,
    cache: Path | None = None,
) -> tuple[Path, float]:
    """The int8 IR (built, or taken from the cache) and the seconds building took."""
    target = quantized_path(
        model, frames=frames, imgsz=imgsz, float_output_convs=float_output_convs, cache=cache
    )
    if target.is_file():
        return target, 0.0
    import nncf
    import openvino as ov

    from benchmarks.int8 import calibration_tensors

    t0 = time.perf_counter()
    tensors = calibration_tensors(footage, imgsz, frames)
    ov_model = ov.Core().read_model(str(model))
    quantized = nncf.quantize(
        ov_model,
        nncf.Dataset(tensors),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(tensors),
        ignored_scope=head_scope(ov_model, float_output_convs),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.xml")
    ov.save_model(quantized, str(partial), compress_to_fp16=False)
    # The .bin first: a reader that finds the .xml finds its weights.
    partial.with_suffix(".bin").replace(target.with_suffix(".bin"))
    partial.replace(target)
    return target, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from api.demo import shared_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--footage", type=Path, default=None, help="default: $KHUPHO_SHARED/footage")
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    ap.add_argument("--quantize-output-convs", action="store_true", help="the head's last 1x1 convs too")
    args = ap.parse_args(argv)
    path, seconds = quantize(
        args.model,
        args.footage or shared_dir() / "footage",
        frames=args.frames,
        float_output_convs=not args.quantize_output_convs,
    )
    print(f"{path} ({'cached' if seconds == 0 else f'built in {seconds:.1f} s'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
