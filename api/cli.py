"""The ``khupho`` command: analyze recordings, manage models, run the service, benchmark."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from api.auth.cli import audit_app, users_app

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Obtain, export and locate models.")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
cluster_app = typer.Typer(no_args_is_help=True, help="A khupho cluster on Ray: its nodes and cameras.")
app.add_typer(cluster_app, name="cluster")

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="model path or name; default: $KHUPHO_MODEL, config, yolov8n-coco"),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def analyze(
    video: Annotated[Path, typer.Argument(help="recorded video file (or URL)")],
    model: ModelOpt = None,
    fps: Annotated[float | None, typer.Option(help="analysis rate; default: every frame")] = None,
    imgsz: Annotated[int | None, typer.Option(help="inference size; default: the detector config's")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out"),
    annotate: Annotated[bool, typer.Option(help="also write annotated.mp4")] = False,
    batch: Annotated[
        int | None, typer.Option(min=1, help="frames per inference call; default: detector.max_batch")
    ] = None,
    conf: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="default: the detector config's")
    ] = None,
    iou: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="default: the detector config's")
    ] = None,
    track: Annotated[bool, typer.Option(help="track objects (ByteTrack)")] = True,
    runtime: Annotated[
        Literal["auto", "onnxruntime", "openvino"] | None,
        typer.Option(help="inference runtime; default: detector.runtime's"),
    ] = None,
    precision: Annotated[
        Literal["auto", "fp32", "bf16"] | None,
        typer.Option(help="inference precision; default: detector.precision's"),
    ] = None,
    threads: Annotated[int, typer.Option(help="inference threads, 0 = auto")] = 0,
    provider: Annotated[list[str] | None, typer.Option(help="execution provider, repeatable")] = None,
    spin: Annotated[
        bool, typer.Option(help="let onnxruntime's threads spin between calls (fastest when alone)")
    ] = True,
    motion: Annotated[
        bool, typer.Option(help="skip the detector on still frames while nothing is tracked")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option(help="YAML of a camera's events section (tracker, rules): also write events.jsonl"),
    ] = None,
    verbose: bool = False,
) -> None:
    """Process a recorded video as fast as possible; write detections.jsonl and summary.json."""
    _setup_logging(verbose)
    import yaml
    from pydantic import ValidationError

    from detectors import DetectorConfig, DetectorError, open_detector
    from events.config import CameraEventsConfig
    from ingest import SourceError
    from ingest.motion import MotionConfig
    from models import ModelNotFound, resolve_model
    from pipeline import analyze_video

    try:
        events = CameraEventsConfig.model_validate(yaml.safe_load(rules.read_text())) if rules else None
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        typer.echo(f"error: {rules}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        path = resolve_model(model)
        # Options left out keep the config's defaults.
        given = {"imgsz": imgsz, "conf": conf, "iou": iou, "runtime": runtime, "precision": precision}
        detector = open_detector(
            path,
            DetectorConfig(
                **{k: v for k, v in given.items() if v is not None},
                intra_op_threads=threads,
                providers=provider or None,
                allow_spinning=spin,
            ),
        )
        summary = analyze_video(
            video,
            detector,
            out,
            analysis_fps=fps,
            batch_size=batch,
            annotate=annotate,
            track=track,
            motion=MotionConfig() if motion else None,
            rules=events,
        )
    except (ModelNotFound, DetectorError, SourceError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(summary.to_json())
    typer.echo(
        f"wrote {out / 'detections.jsonl'} and {out / 'summary.json'}"
        + (f" and {out / 'annotated.mp4'}" if annotate else "")
    )


@models_app.command("list")
def models_list() -> None:
    """Known models, their files and SHA-256."""
    from models import KNOWN_MODELS

    for spec in KNOWN_MODELS.values():
        typer.echo(spec.describe())


@models_app.command("path")
def models_path(model: Annotated[str | None, typer.Argument()] = None) -> None:
    """Where a model resolves to (flag/argument, $KHUPHO_MODEL, default; $KHUPHO_MODELS_DIR, cache)."""
    from models import ModelNotFound, resolve_model

    try:
        typer.echo(resolve_model(model, download=False))
    except ModelNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@models_app.command("fetch")
def models_fetch(
    url: str,
    sha256: Annotated[str, typer.Option(help="expected SHA-256; the download is discarded on mismatch")],
    dest: Annotated[Path | None, typer.Option(help="target file; default: the cache")] = None,
) -> None:
    """Download a model file and verify its checksum."""
    from models import ChecksumMismatch, fetch
    from models.resolve import cache_dir

    target = dest or cache_dir() / url.rsplit("/", 1)[-1]
    try:
        typer.echo(fetch(url, target, sha256.lower()))
    except (ChecksumMismatch, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@models_app.command("export")
def models_export(
    weights: Annotated[Path, typer.Option(help="Ultralytics .pt checkpoint")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("models-out"),
    imgsz: int = 640,
    batch: Annotated[
        int | None, typer.Option(help="fixed batch size; omit for dynamic batch and size")
    ] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 (GPU) or int8 (dynamic quantization)")] = "fp32",
    name: Annotated[str | None, typer.Option(help="output file name")] = None,
) -> None:
    """Export a .pt checkpoint to ONNX (needs the 'ultralytics' extra)."""
    from models.export import export_onnx

    if precision not in ("fp32", "fp16", "int8"):
        typer.echo(f"error: --precision must be fp32, fp16 or int8, not {precision!r}", err=True)
        raise typer.Exit(2)
    try:
        path = export_onnx(weights, out, imgsz=imgsz, batch=batch, precision=precision, name=name)  # type: ignore[arg-type]
    except (RuntimeError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(path)


def _serve(service_factory, duration: float | None) -> None:  # type: ignore[no-untyped-def]
    import signal
    import threading

    from api.config import ConfigError
    from detectors import DetectorError
    from events.storage.store import StorageError
    from models import ModelNotFound

    try:
        service = service_factory()
    except (ConfigError, ModelNotFound, DetectorError, StorageError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if duration:
        threading.Timer(duration, lambda: signal.raise_signal(signal.SIGINT)).start()

    def ready(url: str) -> None:
        where = (
            f"{len(service.workers)} camera(s)"
            if service.cluster is None
            else f"the cluster's cameras (Ray at {service.config.cluster.address})"
        )
        typer.echo(
            f"khupho is serving {where} at {url}  "
            f"(console: {url}/login, API docs: {url}/docs after logging in)"
        )
        if service.config.reports.enabled:
            typer.echo(f"residents' reports: {url}/phan-anh, Open311: {url}/open311/v2/services.json")
        password = service.first_admin_password
        if password is not None:
            # Shown once, here only: it is stored as an Argon2 hash and must be changed at first login.
            typer.echo(f"first start: log in at {url}/login as admin, one-time password {password}")

    service.serve(on_ready=ready)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration")] = Path("khupho.yaml"),
    model: ModelOpt = None,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    verbose: bool = False,
) -> None:
    """Run ingest, detection, tracking, rules, storage and the API from a config file."""
    _setup_logging(verbose)
    from api.config import load_config
    from api.service import Service

    _serve(lambda: Service(load_config(config), model_flag=model), duration)


@app.command()
def demo(
    cameras: Annotated[list[str] | None, typer.Option("--camera", help="demo camera, repeatable")] = None,
    footage: Annotated[Path | None, typer.Option(help="sample clips; default $KHUPHO_SHARED/footage")] = None,
    data: Annotated[Path, typer.Option(help="where events and snapshots go")] = Path(".khupho-demo"),
    imgsz: int = 480,
    fps: Annotated[float, typer.Option(help="analysis rate per camera")] = 3.0,
    speed: Annotated[float, typer.Option(help="replay speed, 1 = real time")] = 1.0,
    port: int = 8080,
    model: ModelOpt = None,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    verbose: bool = False,
) -> None:
    """Serve the shared sample clips as cameras replayed at their real frame rate, with lines and zones."""
    _setup_logging(verbose)
    from api.demo import demo_config, shared_dir
    from api.service import Service

    clips = footage or shared_dir() / "footage"
    _serve(
        lambda: Service(
            demo_config(clips, data, cameras=cameras, imgsz=imgsz, fps=fps, speed=speed, port=port),
            model_flag=model,
        ),
        duration,
    )


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="about two minutes (imgsz 320, short); for tests")] = False,
    model: Annotated[Path | None, typer.Option(help="default: the shared yolov8n-coco.onnx")] = None,
    imgsz: Annotated[int | None, typer.Option(help="inference size; default 640 (320 with --quick)")] = None,
    out: Annotated[Path, typer.Option(help="folder for bench.json, .md and .png")] = Path("out/bench"),
    shared: Annotated[Path | None, typer.Option(help="shared assets; default $KHUPHO_SHARED")] = None,
    peer: Annotated[bool, typer.Option(help="measure Ultralytics' loop (needs the extra)")] = True,
    verbose: bool = False,
) -> None:
    """Benchmark against the raw-inference limit and Ultralytics on the shared footage; print the table."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    from api.demo import shared_dir
    from benchmarks.bench import BenchOptions
    from benchmarks.bench import run as run_bench

    root = shared or shared_dir()
    result = run_bench(
        BenchOptions(
            model=model or root / "models/yolov8n-coco.onnx",
            shared=root,
            out=out,
            quick=quick,
            imgsz=imgsz,
            peer=peer,
        )
    )
    typer.echo(result["table"])
    typer.echo(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and {out / 'bench.png'}")


def _cluster_config(config: Path):  # type: ignore[no-untyped-def]
    from api.config import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if loaded.cluster is None:
        typer.echo(f"error: {config} has no cluster: section", err=True)
        raise typer.Exit(2)
    return loaded.cluster


@cluster_app.command("status")
def cluster_status_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration")] = Path("khupho.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="the controller's whole status as JSON")] = False,
) -> None:
    """Nodes, cameras per node, capacity used, detector queue depths."""
    import json

    from cluster.client import cluster_status

    status = cluster_status(_cluster_config(config))
    if status is None:
        typer.echo("no khupho controller runs in this cluster (start one with khupho run)", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(status, indent=2, default=str))
        return
    from cluster.report_table import status_table

    typer.echo(status_table(status))


@cluster_app.command("stop")
def cluster_stop_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration")] = Path("khupho.yaml"),
) -> None:
    """Stop every camera of the cluster (their open events end) and remove the controller."""
    from cluster.client import stop_cluster

    if not stop_cluster(_cluster_config(config)):
        typer.echo("no khupho controller runs in this cluster", err=True)
        raise typer.Exit(1)
    typer.echo("cluster cameras stopped")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
