"""Prometheus metrics of one khupho process, in a registry of their own (pass the object around).

The pipeline calls the ``frame_*``/``observe_*``/``set_*`` methods; ``GET /metrics``
renders :meth:`KhuphoMetrics.render`. Components that keep their own counters (the
event bus, the snapshot writer) are read at scrape time through :meth:`watch_bus`
and :meth:`watch_snapshots`, so they need not know about Prometheus.

Names follow Prometheus conventions: ``_total`` counters, base units (seconds).
Per-camera rates are best taken from the counters (``rate(khupho_frames_decoded_total[1m])``);
the ``*_fps`` gauges carry the pipeline's own smoothed estimate for dashboards
without PromQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from events.model import EventTransition
from events.storage.bus import BusStats, EventBus
from events.storage.retention import PurgeReport
from events.storage.snapshot import SnapshotStats, SnapshotWriter
from events.storage.spool import SpoolStats, UploadSpool
from pipeline.clips import ClipRecorder, ClipStats

# Per-batch inference on CPU ranges from ~5 ms (nano, small batch) to seconds (large model, big batch).
INFERENCE_BUCKETS = (
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class KhuphoMetrics:
    """Every metric the service exports; ``registry`` is private to this object."""

    def __init__(self, namespace: str = "khupho") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ns, reg = namespace, self.registry
        self._frames_decoded = Counter(
            "frames_decoded", "Frames out of the camera's decoder", ["camera"], namespace=ns, registry=reg
        )
        self._frames_analysed = Counter(
            "frames_analysed", "Frames run through detection", ["camera"], namespace=ns, registry=reg
        )
        self._frames_dropped = Counter(
            "frames_dropped",
            "Frames not analysed, by reason (rate_limit, queue_full, stale, decode_error...)",
            ["camera", "reason"],
            namespace=ns,
            registry=reg,
        )
        self._decoded_fps = Gauge(
            "camera_decoded_fps",
            "Frames per second out of the decoder (fewer than sent when only keyframes are decoded)",
            ["camera"],
            namespace=ns,
            registry=reg,
        )
        self._analysed_fps = Gauge(
            "camera_analysed_fps",
            "Analysed frames per second (pipeline estimate)",
            ["camera"],
            namespace=ns,
            registry=reg,
        )
        self._source_fps = Gauge(
            "camera_source_fps",
            "Frames per second the camera sends (measured from packets)",
            ["camera"],
            namespace=ns,
            registry=reg,
        )
        self._camera_up = Gauge(
            "camera_up", "1 while the camera delivers frames, else 0", ["camera"], namespace=ns, registry=reg
        )
        self._reconnects = Counter(
            "camera_reconnects", "Reconnections to the camera stream", ["camera"], namespace=ns, registry=reg
        )
        self._inference = Histogram(
            "inference_seconds",
            "Wall time of one detector call (one batch)",
            namespace=ns,
            registry=reg,
            buckets=INFERENCE_BUCKETS,
        )
        self._batch = Histogram(
            "inference_batch_size",
            "Pictures per detector call",
            namespace=ns,
            registry=reg,
            buckets=BATCH_BUCKETS,
        )
        self._detector = Gauge(
            "detector_info",
            "1 for the runtime and precision the detector runs on (detector.runtime/precision resolved)",
            ["model", "runtime", "precision"],
            namespace=ns,
            registry=reg,
        )
        self._queue_depth = Gauge(
            "queue_depth", "Items waiting in a pipeline queue", ["queue"], namespace=ns, registry=reg
        )
        self._journal_bytes = Gauge(
            "writer_journal_bytes",
            "Event batches waiting on disk because the event store fell behind",
            namespace=ns,
            registry=reg,
        )
        self._oldest_unwritten = Gauge(
            "writer_oldest_unwritten_seconds",
            "Age of the oldest event batch not yet stored (the live feed lags by this much)",
            namespace=ns,
            registry=reg,
        )
        self._events = Counter(
            "event_transitions",
            "Event transitions emitted by the rules",
            ["camera", "type", "phase"],
            namespace=ns,
            registry=reg,
        )
        self._event_latency = Histogram(
            "frame_to_event_seconds",
            "From a frame leaving the decoder to the event transition it caused",
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )
        self._watched = _WatchCollector(ns)
        reg.register(self._watched)

    # -- pipeline hooks ----------------------------------------------------------

    def frame_decoded(self, *, camera: str, n: int = 1) -> None:
        self._frames_decoded.labels(camera).inc(n)

    def frame_analysed(self, *, camera: str, n: int = 1) -> None:
        self._frames_analysed.labels(camera).inc(n)

    def frame_dropped(self, *, camera: str, reason: str, n: int = 1) -> None:
        self._frames_dropped.labels(camera, reason).inc(n)

    def set_camera_fps(
        self,
        *,
        camera: str,
        decoded: float | None = None,
        analysed: float | None = None,
        source: float | None = None,
    ) -> None:
        for gauge, value in (
            (self._decoded_fps, decoded),
            (self._analysed_fps, analysed),
            (self._source_fps, source),
        ):
            if value is not None:
                gauge.labels(camera).set(value)

    def set_camera_up(self, *, camera: str, up: bool) -> None:
        self._camera_up.labels(camera).set(1 if up else 0)

    def camera_reconnected(self, *, camera: str) -> None:
        self._reconnects.labels(camera).inc()

    def set_detector(self, *, model: str, runtime: str, precision: str) -> None:
        """Say what runs the detector (set once at start-up)."""
        self._detector.clear()
        self._detector.labels(model, runtime, precision).set(1)

    def observe_inference(self, *, batch_size: int, seconds: float) -> None:
        self._inference.observe(seconds)
        self._batch.observe(batch_size)

    def set_queue_depth(self, *, queue: str, n: int) -> None:
        self._queue_depth.labels(queue).set(n)

    def set_writer_state(self, *, journal_bytes: int, oldest_unwritten_s: float) -> None:
        self._journal_bytes.set(journal_bytes)
        self._oldest_unwritten.set(oldest_unwritten_s)

    def event_transition(self, *, transition: EventTransition) -> None:
        ev = transition.event
        self._events.labels(ev.camera, str(ev.type), str(transition.phase)).inc()

    def observe_event_latency(self, *, seconds: float) -> None:
        self._event_latency.observe(seconds)

    # -- components read at scrape time --------------------------------------------

    def watch_bus(self, bus: EventBus) -> None:
        self._watched.bus = bus.stats

    def watch_snapshots(self, writer: SnapshotWriter) -> None:
        self._watched.snapshots = writer.stats

    def watch_spool(self, spool: UploadSpool) -> None:
        self._watched.spool = spool.stats

    def watch_clips(self, clips: ClipRecorder) -> None:
        self._watched.clips = clips.stats
        self._watched.clip_buffers = clips.buffered_bytes

    def watch_retention(self, totals: PurgeReport) -> None:
        self._watched.retention = totals

    def watch_feed(self, stats: Callable[[], Any]) -> None:
        """Cluster mode: the live feed from the database (``events/storage/pg_feed.py``)."""
        self._watched.feed = stats

    def watch_cluster(self, status: Callable[[], dict[str, Any] | None]) -> None:
        """Cluster mode: per-node and per-camera numbers from the controller's last status."""
        self._watched.cluster = status

    def watch_publisher(self, name: str, stats: Callable[[], object]) -> None:
        """An MQTT or webhook publisher: its integer counters by outcome, and whether it is connected."""
        self._watched.publishers[name] = stats

    # -- exposition ------------------------------------------------------------------

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WatchCollector(Collector):
    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.bus: Callable[[], BusStats] | None = None
        self.snapshots: Callable[[], SnapshotStats] | None = None
        self.spool: Callable[[], SpoolStats] | None = None
        self.clips: Callable[[], ClipStats] | None = None
        self.clip_buffers: Callable[[], dict[str, int]] | None = None
        self.retention: PurgeReport | None = None
        self.publishers: dict[str, Callable[[], object]] = {}
        self.cluster: Callable[[], dict[str, Any] | None] | None = None
        self.feed: Callable[[], Any] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # series appear once a component is watched

    def collect(self) -> Iterable[Metric]:
        ns = self.ns
        if self.feed is not None:
            f = self.feed()
            yield CounterMetricFamily(
                f"{ns}_feed_published", "Transitions the database feed published", f.published
            )
            yield CounterMetricFamily(
                f"{ns}_feed_reconnects", "Feed connections made again after a loss", f.reconnects
            )
            yield CounterMetricFamily(
                f"{ns}_feed_caught_up", "Transitions published by catch-ups", f.caught_up
            )
            yield CounterMetricFamily(
                f"{ns}_feed_duplicates", "Feed notifications already published", f.duplicates
            )
            yield GaugeMetricFamily(f"{ns}_feed_connected", "1 while the feed listens", float(f.connected))
        if self.cluster is not None:
            status = self.cluster()
            if status is not None:
                yield from _cluster_metrics(ns, status)
        if self.bus is not None:
            s = self.bus()
            yield CounterMetricFamily(
                f"{ns}_bus_published", "Transitions published on the event bus", s.published
            )
            yield GaugeMetricFamily(
                f"{ns}_bus_subscribers", "Live subscribers of the event bus", s.subscribers
            )
            yield CounterMetricFamily(
                f"{ns}_bus_dropped", "Transitions dropped from slow subscribers' queues", s.dropped
            )
            yield CounterMetricFamily(
                f"{ns}_bus_disconnected", "Subscribers cut off for falling behind", s.disconnected
            )
            yield CounterMetricFamily(
                f"{ns}_bus_refused", "Subscriptions refused: max_subscribers were live", s.refused
            )
        if self.snapshots is not None:
            s = self.snapshots()
            outcomes = CounterMetricFamily(
                f"{ns}_snapshots", "Snapshot candidates by outcome", labels=["outcome"]
            )
            for outcome in ("written", "failed", "dropped", "superseded", "not_better"):
                outcomes.add_metric([outcome], getattr(s, outcome))
            yield outcomes
            yield GaugeMetricFamily(
                f"{ns}_snapshots_pending", "Snapshot candidates waiting to be written", s.pending
            )
        if self.spool is not None:
            u = self.spool()
            uploads = CounterMetricFamily(f"{ns}_uploads", "Media uploads by outcome", labels=["outcome"])
            for outcome in ("uploaded", "spooled", "retried", "evicted"):
                uploads.add_metric([outcome], getattr(u, outcome))
            yield uploads
            yield GaugeMetricFamily(f"{ns}_spool_items", "Media waiting in the upload spool", u.pending)
            yield GaugeMetricFamily(f"{ns}_spool_bytes", "Bytes waiting in the upload spool", u.pending_bytes)
        if self.clips is not None and self.clip_buffers is not None:
            c = self.clips()
            clips = CounterMetricFamily(f"{ns}_clips", "Event clips by outcome", labels=["outcome"])
            for outcome in ("started", "written", "failed", "unsupported", "short"):
                clips.add_metric([outcome], getattr(c, outcome))
            yield clips
            yield GaugeMetricFamily(
                f"{ns}_clips_pending", "Clips being recorded (event open or post-roll not yet in)", c.pending
            )
            held = GaugeMetricFamily(
                f"{ns}_clip_buffer_bytes", "Compressed video held for clips", labels=["camera"]
            )
            for camera, size in sorted(self.clip_buffers().items()):
                held.add_metric([camera], size)
            yield held
        if self.retention is not None:
            r = self.retention
            purged = CounterMetricFamily(f"{ns}_retention_deleted", "Deleted by retention", labels=["what"])
            for what in ("events", "media", "traffic_rows", "watermark_media"):
                purged.add_metric([what], getattr(r, what))
            yield purged
        if self.publishers:
            messages = CounterMetricFamily(
                f"{ns}_publish_messages",
                "MQTT / webhook messages by outcome (sent, acked, delivered, retried, dropped, failed)",
                labels=["publisher", "outcome"],
            )
            connected = GaugeMetricFamily(
                f"{ns}_publish_connected", "MQTT publisher connected to its broker", labels=["publisher"]
            )
            for name, stats in self.publishers.items():
                values = dataclasses.asdict(stats())  # type: ignore[call-overload]
                for outcome, value in values.items():
                    if outcome == "connected":
                        connected.add_metric([name], float(value))
                    elif isinstance(value, int) and not isinstance(value, bool) and outcome != "connects":
                        messages.add_metric([name, outcome], value)
            yield messages
            yield connected


def _cluster_metrics(ns: str, status: dict[str, Any]) -> Iterable[Metric]:
    """The controller's view, aggregated per node (cameras' counters summed on their node)."""
    node_of = {n["id"]: n["address"] for n in status["nodes"]}
    cameras = GaugeMetricFamily(f"{ns}_node_cameras", "Cameras placed on the node", labels=["node"])
    capacity = GaugeMetricFamily(f"{ns}_node_capacity", "Cameras the node offers", labels=["node"])
    queue = GaugeMetricFamily(
        f"{ns}_node_detector_queue_depth", "Frames waiting for the node's detector", labels=["node"]
    )
    images = CounterMetricFamily(
        f"{ns}_node_inference_images", "Pictures the node's detector ran", labels=["node"]
    )
    batches = CounterMetricFamily(
        f"{ns}_node_inference_batches", "Detector calls on the node", labels=["node"]
    )
    seconds = CounterMetricFamily(
        f"{ns}_node_inference_seconds", "Seconds the node's detector spent", labels=["node"]
    )
    analysed = CounterMetricFamily(
        f"{ns}_node_frames_analysed",
        "Frames analysed by the node's cameras (current actors)",
        labels=["node"],
    )
    fps = GaugeMetricFamily(
        f"{ns}_node_analysed_fps", "Frames per second the node's cameras analyse", labels=["node"]
    )
    for node in status["nodes"]:
        label = [node["address"]]
        cameras.add_metric(label, len(node["cameras"]))
        capacity.add_metric(label, node["capacity"])
        det = node.get("detector")
        if det is not None:
            queue.add_metric(label, det["queue_depth"])
            images.add_metric(label, det["images"])
            batches.add_metric(label, det["batches"])
            seconds.add_metric(label, det["seconds"])
    per_node: dict[str, list[dict[str, Any]]] = {}
    camera_up = GaugeMetricFamily(
        f"{ns}_cluster_camera_up", "1 when the camera's actor delivers frames", labels=["camera", "node"]
    )
    for cam in status["cameras"]:
        report = cam.get("report")
        node = node_of.get(cam["node"] or "", "none")
        camera_up.add_metric([cam["id"], node], 1.0 if report and report["state"] == "online" else 0.0)
        if report is not None:
            per_node.setdefault(node, []).append(report)
    for node, reports in per_node.items():
        analysed.add_metric([node], sum(r["analysed"] for r in reports))
        fps.add_metric([node], sum(r["analysed_fps"] for r in reports))
    yield from (cameras, capacity, queue, images, batches, seconds, analysed, fps, camera_up)
    yield GaugeMetricFamily(
        f"{ns}_cluster_unplaced_cameras", "Cameras no node can take", len(status["unplaced"])
    )
    yield CounterMetricFamily(f"{ns}_cluster_rehomes", "Cameras placed again after a loss", status["rehomes"])
    yield CounterMetricFamily(f"{ns}_cluster_moves", "Cameras moved to rebalance", status["moves"])
