"""The peer: Ultralytics' own tracking loop on the same ONNX model and clip, in a process of its own.

    python -m benchmarks.peer --model M --video V [--imgsz 640] [--frames 300]
    python -m benchmarks.peer --export-openvino PT --out DIR [--imgsz 640]

``--model`` is anything ``YOLO()`` loads: the ONNX file, or the folder of
Ultralytics' OpenVINO export (``YOLO(pt).export(format="openvino")``, the
peer's fastest CPU setup), which ``openvino_export`` makes from a scratch copy
of the ``.pt`` in the benchmark cache, never beside the shared model.

Runs ``YOLO(model).track(video, stream=True)`` (decode, letterbox, onnxruntime,
NMS, ByteTrack) and prints one JSON line: frames/s over every frame after the
first (the first carries the loader's start and, on the first run, model load
and warm-up; khupho's session set-up is not timed either). A process of its
own keeps torch's and Ultralytics' threads, OpenCV settings and memory out of
khupho's measurements. With ``--serve`` the process loads the model once and
measures once per line ``run`` read from stdin, so a benchmark can alternate
peer and khupho rounds without paying torch's import each time. Needs the
``ultralytics`` extra.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _measure(yolo: Any, video: Path, imgsz: int, frames: int) -> dict[str, float]:
    stream = yolo.track(str(video), imgsz=imgsz, stream=True, verbose=False, conf=0.25, iou=0.7)
    next(stream)
    t0 = time.perf_counter()
    n = sum(1 for _ in itertools.islice(stream, frames - 1))
    seconds = time.perf_counter() - t0
    return {"fps": n / seconds if seconds > 0 else 0.0, "frames": n, "seconds": seconds}


def openvino_export(pt: Path, imgsz: int, cache: Path) -> Path:
    """Ultralytics' OpenVINO export of ``pt`` at ``imgsz`` (its folder), made once per model and size
    in a child process (torch stays out of the benchmark's process) and kept in ``cache``."""
    st = pt.stat()
    folder = cache / f"peer-openvino-{pt.stem}-{st.st_size}-{imgsz}"
    model_dir = folder / f"{pt.stem}_openvino_model"
    if (model_dir / f"{pt.stem}.xml").is_file():
        return model_dir
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / pt.name
    shutil.copyfile(pt, scratch)  # Ultralytics writes the export beside the .pt it reads
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "benchmarks.peer", "--export-openvino", str(scratch), "--imgsz", str(imgsz)]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not model_dir.is_dir():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"Ultralytics OpenVINO export failed: {tail}")
    return model_dir


class PeerProcess:
    """A child process holding the Ultralytics model; ``measure()`` runs the loop once more."""

    def __init__(self, model: Path, video: Path, imgsz: int, frames: int) -> None:
        repo = Path(__file__).resolve().parents[1]
        cmd = [sys.executable, "-m", "benchmarks.peer", "--model", str(model), "--video", str(video)]
        cmd += ["--imgsz", str(imgsz), "--frames", str(frames), "--serve"]
        # stderr to a file: warnings must never fill a pipe nobody reads and block the child.
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            cmd, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        # Wait until torch and Ultralytics are imported, so loading them never overlaps a measurement.
        self._read()

    def _read(self) -> dict[str, float]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(10)
            self._stderr.seek(0)
            err = self._stderr.read().strip().splitlines()
            raise RuntimeError(f"peer failed: {err[-1] if err else 'no output'}")
        return json.loads(line)

    def measure(self) -> dict[str, float]:
        """One timed pass over the clip; raises ``RuntimeError`` with the child's message if it failed."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write("run\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--video", type=Path)
    ap.add_argument("--export-openvino", type=Path, metavar="PT", help="export PT to OpenVINO beside it")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--serve", action="store_true", help="measure once per 'run' line on stdin")
    args = ap.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks or downloads during a benchmark
    # Ultralytics prints to stdout ("Loading ..."); the results line must be alone there.
    results, sys.stdout = sys.stdout, sys.stderr
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        print(f"ultralytics is not installed ({exc}); pip install 'khupho[ultralytics]'", file=sys.stderr)
        return 3
    if args.export_openvino:
        YOLO(str(args.export_openvino)).export(format="openvino", imgsz=args.imgsz)
        return 0
    if args.model is None or args.video is None:
        ap.error("--model and --video are required")
    yolo = YOLO(str(args.model), task="detect")
    if not args.serve:
        print(json.dumps(_measure(yolo, args.video, args.imgsz, args.frames)), file=results)
        return 0
    print(json.dumps({"ready": 1}), file=results, flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            print(json.dumps(_measure(yolo, args.video, args.imgsz, args.frames)), file=results, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
