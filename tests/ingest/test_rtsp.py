"""RtspSource and VideoSource against a real GStreamer RTSP server on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from ingest import CameraSourceConfig, CameraState, Frame, RtspSource, SourceError, VideoSource

from .conftest import RtspServer

pytestmark = pytest.mark.slow

ServerFactory = Callable[..., RtspServer]
PASSWORD = "s3cr3t-Pa55"


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def fast_config(url: str, **overrides: Any) -> CameraSourceConfig:
    """Short timeouts and backoff so outages play out in seconds."""
    base: dict[str, Any] = {
        "url": url,
        "open_timeout_s": 2.0,
        "read_timeout_s": 1.0,
        "stall_timeout_s": 3.0,
        "offline_grace_s": 1.0,
        "analysis_fps": 5.0,
        "backoff": {"initial_s": 0.05, "max_s": 0.5, "multiplier": 2.0, "jitter": 0.2},
    }
    base.update(overrides)
    return CameraSourceConfig(**base)


class Recorder:
    """Collects a camera's frames and status changes, with when they happened."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.changes: list[tuple[float, CameraState, CameraState, str | None]] = []
        self._lock = threading.Lock()

    def frame(self, frame: Frame) -> None:
        with self._lock:
            self.frames.append(frame)

    def status(self, *, camera: str, old: CameraState, new: CameraState, error: str | None) -> None:
        with self._lock:
            self.changes.append((time.monotonic(), old, new, error))

    def transitions(self) -> list[tuple[str, str]]:
        return [(str(old), str(new)) for _, old, new, _ in self.changes]


@contextmanager
def running(*sources: RtspSource) -> Iterator[None]:
    for src in sources:
        src.start()
    try:
        yield
    finally:
        for src in sources:
            assert src.stop(), f"{src.camera} did not stop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def unanswering_host() -> Iterator[int]:
    """A port on 127.0.0.1 that drops connection attempts, like a camera that is switched off.

    A listener with a full accept queue makes the kernel drop further SYNs: the client's
    connect hangs instead of being refused, as with an address where no host answers.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def thread_and_fd_count() -> tuple[int, int]:
    return psutil.Process().num_threads(), len(os.listdir("/proc/self/fd"))


def thread_names() -> list[str]:
    """OS-level names of this process's threads (FFmpeg names its decoder threads too)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            continue
    return sorted(names)


# ---------------------------------------------------------------- opening: every way it fails


def test_open_errors_are_clear_and_masked(
    rtsp_server: ServerFactory, stream_media: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server = rtsp_server(
        {"cam": stream_media["highway"], "door": stream_media["highway"], "mic": "audiotest"},
        auth={"door": ("admin", PASSWORD)},
    )

    def open_error(url: str, **kw: Any) -> tuple[SourceError, float]:
        started = time.monotonic()
        with pytest.raises(SourceError) as err:
            VideoSource(url, camera="gate", timeout=(1.0, 1.0), **kw)
        elapsed = time.monotonic() - started
        assert "camera 'gate'" in str(err.value)
        assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value.args)
        assert err.value.__cause__ is None and err.value.__context__ is None
        return err.value, elapsed

    err, _ = open_error(f"rtsp://127.0.0.1:{free_port()}/cam")
    assert err.kind == "refused" and "connection refused" in err.reason

    err, _ = open_error(server.url("nope"))
    assert err.kind == "not_found" and "404" in err.reason

    err, _ = open_error(server.url("door", "admin", "wrong-" + PASSWORD))
    assert err.kind == "unauthorized" and "401" in err.reason
    assert f"rtsp://admin:***@127.0.0.1:{server.port}/door" in str(err)

    err, _ = open_error(server.url("door"))
    assert err.kind == "unauthorized"

    err, _ = open_error(server.url("mic"))
    assert err.kind == "no_video" and "audio" in err.reason

    with unanswering_host() as port:
        err, elapsed = open_error(f"rtsp://127.0.0.1:{port}/cam")
    assert err.kind == "timeout" and "no answer within 1.0 s" in err.reason
    assert 0.9 <= elapsed < 3.0

    with silent_server() as port:
        err, elapsed = open_error(f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/cam")
    assert err.kind == "timeout" and "no answer within 1.0 s" in err.reason
    assert 0.9 <= elapsed < 3.0

    # The right credentials work, and a live URL yields frames at the analysis rate.
    with VideoSource(server.url("door", "admin", PASSWORD), camera="gate", analysis_fps=5) as src:
        assert (src.info.width, src.info.height, src.info.is_live) == (320, 240, True)
        frames = []
        for frame in src:
            frames.append(frame)
            if len(frames) == 6:
                break
    assert np.diff([f.pts for f in frames]) == pytest.approx([0.2] * 5, abs=0.01)

    # The same failures through a live source: status, callbacks and logs, all masked.
    rec = Recorder()
    bad = RtspSource(
        "gate",
        fast_config(server.url("door", "admin", "wrong-" + PASSWORD), offline_grace_s=0.5),
        on_status=rec.status,
    )
    with caplog.at_level(logging.DEBUG, logger="ingest"), running(bad):
        assert wait_for(lambda: bad.status().state is CameraState.OFFLINE, 5)
        assert wait_for(lambda: bad.status().reconnects >= 2, 5)
    status = bad.status()
    assert (
        "401" in (status.last_error or "") and status.url == f"rtsp://admin:***@127.0.0.1:{server.port}/door"
    )
    assert rec.transitions()[0] == ("connecting", "offline") and "401" in (rec.changes[0][3] or "")
    assert status.frames_analysed == 0 and status.state is CameraState.STOPPED
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in logged and "camera 'gate'" in logged and PASSWORD not in logged


def test_udp_transport_and_a_slow_consumer(rtsp_server: ServerFactory, stream_media: dict[str, Path]) -> None:
    server = rtsp_server({"cam": stream_media["highway"], "cam2": stream_media["highway"]})
    rec = Recorder()
    udp = RtspSource("udp-cam", fast_config(server.url("cam"), transport="udp"), on_frame=rec.frame)
    # No callback: frames wait in a bounded queue; nobody reads it for a while.
    queued = RtspSource("queued", fast_config(server.url("cam2"), queue_size=3))
    with running(udp, queued):
        assert wait_for(lambda: len(rec.frames) >= 5, 5)
        assert wait_for(lambda: queued.status().dropped_frames >= 5, 5)
        picked = queued.stats.picked  # frames picked so far; the queue should hold the newest three
        frames = [queued.get(1.0) for _ in range(3)]
        assert queued.status().state is CameraState.ONLINE
    # After stop, frames() hands out what is still queued, then ends.
    rest = list(queued.frames(poll_s=0.05))
    assert len(rest) <= 3 and all(r.pts > frames[-1].pts for r in rest if frames[-1] is not None)
    assert rec.frames[0].image.shape == (240, 320, 3)
    assert all(f is not None for f in frames)
    pts = [f.pts for f in frames if f is not None]
    assert np.diff(pts) == pytest.approx([0.2, 0.2], abs=0.01)
    # The oldest were dropped, not the newest: what is left is from the last second.
    assert pts[-1] >= (picked - 4) * 0.2 - 0.01


def test_pictureless_stream_trips_the_stall_watchdog(
    rtsp_server: ServerFactory, stream_media: dict[str, Path]
) -> None:
    """Packets keep arriving (the socket never goes quiet) but no picture decodes."""
    server = rtsp_server({"cam": stream_media["no_pictures"]})
    rec = Recorder()
    src = RtspSource("stuck", fast_config(server.url("cam"), stall_timeout_s=1.5), on_status=rec.status)
    with running(src):
        assert wait_for(lambda: src.status().reconnects >= 1, 5)
        status = src.status()
    assert "stalled: data arrives but no frame decoded for 1.5 s" in (status.last_error or "")
    assert src.stats.packets > 20 and src.stats.decoded == 0
    assert ("connecting", "offline") in rec.transitions()


# ---------------------------------------------------------------- outages


def test_server_killed_then_back_on_the_same_port(
    rtsp_server: ServerFactory, stream_media: dict[str, Path]
) -> None:
    server = rtsp_server({"cam": stream_media["highway"]})
    rec = Recorder()
    src = RtspSource("yard", fast_config(server.url("cam")), on_frame=rec.frame, on_status=rec.status)
    with running(src):
        assert wait_for(lambda: len(rec.frames) >= 5, 5)
        status = src.status()
        assert status.state is CameraState.ONLINE and status.last_frame_time is not None
        before = rec.frames[-1]

        killed_at = time.monotonic()
        server.kill()
        # PyAV sees a plain end of stream: on a live source that is a disconnect.
        assert wait_for(lambda: src.status().state is CameraState.CONNECTING, 2)
        assert wait_for(lambda: src.status().state is CameraState.OFFLINE, 4)
        offline = src.status()
        offline_after = rec.changes[-1][0] - killed_at
        assert 1.0 <= offline_after < 2.5, offline_after  # the grace period, not at once
        assert "refused" in (offline.last_error or "") and offline.reconnects >= 1
        assert offline.source_fps == 0.0 and offline.analysed_fps == 0.0
        time.sleep(0.5)

        server.start()
        back_at = time.monotonic()
        assert wait_for(lambda: src.status().state is CameraState.ONLINE, 5)
        assert time.monotonic() - back_at < 5.0
        count = len(rec.frames)
        assert wait_for(lambda: len(rec.frames) >= count + 5, 5), "frames resume"
        after = rec.frames[count]
    assert rec.transitions() == [
        ("connecting", "online"),
        ("online", "connecting"),
        ("connecting", "offline"),
        ("offline", "online"),
        ("online", "stopped"),
    ]
    # One timeline across the outage: pts and index keep increasing.
    assert after.pts > before.pts + 1.0 and after.index > before.index
    pts = [f.pts for f in rec.frames]
    assert np.all(np.diff(pts) > 0)


def test_frozen_server_is_detected_as_a_stall(
    rtsp_server: ServerFactory, stream_media: dict[str, Path]
) -> None:
    server = rtsp_server({"cam": stream_media["highway"]})
    rec = Recorder()
    src = RtspSource(
        "alley",
        fast_config(server.url("cam"), open_timeout_s=1.0, offline_grace_s=1.5),
        on_frame=rec.frame,
        on_status=rec.status,
    )
    with running(src):
        assert wait_for(lambda: len(rec.frames) >= 5, 5)
        server.freeze()  # SIGSTOP: the socket stays open, nothing comes
        frozen_at = time.monotonic()
        try:
            assert wait_for(lambda: src.status().state is CameraState.CONNECTING, 3)
            detected = rec.changes[-1][0] - frozen_at
            # Read timeout 1 s, plus what was already buffered and FFmpeg's 0.1 s poll granularity.
            assert 0.8 <= detected < 3.0, detected
            assert "no data for 1.0 s" in (rec.changes[-1][3] or "")
            assert wait_for(lambda: src.status().state is CameraState.OFFLINE, 4)
            assert wait_for(lambda: src.status().reconnects >= 2, 4)  # attempts time out meanwhile
            count = len(rec.frames)
        finally:
            server.thaw()
        thawed_at = time.monotonic()
        assert wait_for(lambda: src.status().state is CameraState.ONLINE, 5)
        assert time.monotonic() - thawed_at < 5.0
        assert wait_for(lambda: len(rec.frames) >= count + 5, 5)
    assert rec.transitions()[:4] == [
        ("connecting", "online"),
        ("online", "connecting"),
        ("connecting", "offline"),
        ("offline", "online"),
    ]


def test_flapping_camera_does_not_disturb_others_or_leak(
    rtsp_server: ServerFactory, stream_media: dict[str, Path]
) -> None:
    steady_server = rtsp_server({name: stream_media["highway"] for name in ("a", "b", "c")})
    flappy_server = rtsp_server({"f": stream_media["highway"]})
    threads0, fds0 = thread_and_fd_count()

    steady = {name: Recorder() for name in ("a", "b", "c")}
    sources = [
        RtspSource(name, fast_config(steady_server.url(name)), on_frame=rec.frame)
        for name, rec in steady.items()
    ]
    flappy_rec = Recorder()
    flappy = RtspSource(
        "f",
        fast_config(flappy_server.url("f"), backoff={"initial_s": 0.05, "max_s": 0.2, "jitter": 0.2}),
        on_frame=flappy_rec.frame,
    )
    with running(*sources, flappy):
        online = lambda src: src.status().state is CameraState.ONLINE  # noqa: E731
        assert wait_for(lambda: all(online(s) for s in [*sources, flappy]), 5)
        time.sleep(0.5)
        threads1, fds1 = thread_and_fd_count()
        names1 = thread_names()

        start = time.time()
        cycles = 20
        for cycle in range(cycles):
            flappy_server.kill()
            assert wait_for(lambda: not online(flappy), 3), f"cycle {cycle}: disconnect not seen"
            flappy_server.start()
            seen = len(flappy_rec.frames)
            assert wait_for(lambda seen=seen: len(flappy_rec.frames) > seen, 5), (
                f"cycle {cycle}: no frames after restart"
            )
        end = time.time()
        # Rate from the first to the last frame delivered in the window (wall clock): no
        # quantisation error from where the window's edges fall between frames.
        rates = {}
        for name, rec in steady.items():
            times = [f.wall_time for f in rec.frames if start <= f.wall_time <= end]
            rates[name] = (len(times) - 1) / (times[-1] - times[0])
        print(f"\nflapping: {cycles} cycles in {end - start:.1f} s; steady cameras' analysed fps: {rates}")
        for name, rate in rates.items():
            assert rate == pytest.approx(5.0, rel=0.10), f"camera {name}: {rate:.2f} fps during flapping"
        for src in sources:
            assert src.status().reconnects == 0
        assert flappy.status().reconnects >= cycles

        # Same sessions open as before the flapping: same threads and descriptors.
        assert wait_for(lambda: thread_and_fd_count() == (threads1, fds1), 3), (
            f"threads/fds {thread_and_fd_count()} after flapping vs {(threads1, fds1)} before; "
            f"threads {thread_names()} vs {names1}"
        )
    assert wait_for(lambda: thread_and_fd_count() == (threads0, fds0), 3), (
        f"threads/fds {thread_and_fd_count()} after stopping vs {(threads0, fds0)} at the start"
    )


# ---------------------------------------------------------------- picture changes


def test_resolution_change_and_8k_over_rtsp(
    rtsp_server: ServerFactory, stream_media: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server = rtsp_server(
        {"res": stream_media["reschange"], "big": stream_media["8k"], "big2": stream_media["8k"]}
    )
    res_rec, big_rec = Recorder(), Recorder()
    res = RtspSource("res", fast_config(server.url("res"), analysis_fps=None), on_frame=res_rec.frame)
    big = RtspSource("big", fast_config(server.url("big"), analysis_fps=None), on_frame=big_rec.frame)
    limited = RtspSource(
        "limited", fast_config(server.url("big2"), max_pixels=1920 * 1080, offline_grace_s=0.5)
    )
    with caplog.at_level(logging.WARNING, logger="ingest"), running(res, big, limited):
        shapes = lambda: {f.image.shape for f in res_rec.frames}  # noqa: E731
        assert wait_for(lambda: {(360, 640, 3), (240, 320, 3)} <= shapes(), 8), shapes()
        assert wait_for(lambda: len(big_rec.frames) >= 2, 8)
        assert wait_for(lambda: limited.status().state is CameraState.OFFLINE, 5)
        assert res.status().state is CameraState.ONLINE
    assert big_rec.frames[0].image.shape == (4320, 7680, 3)
    assert "7680x4320" in (limited.status().last_error or "") and limited.status().frames_analysed == 0
    assert res.stats.resolution_changes >= 1
    assert any("resolution changed from 640x360 to 320x240" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- scale


def measure(sources: list[RtspSource], recs: list[Recorder], seconds: float) -> dict[str, float]:
    assert wait_for(lambda: all(s.status().state is CameraState.ONLINE for s in sources), 8)
    time.sleep(1.0)  # past the connection burst
    counts = [len(r.frames) for r in recs]
    decoded = [s.stats.decoded for s in sources]
    packets = [s.stats.packets for s in sources]
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {
        "cpu_per_camera": cpu / wall / len(sources),
        "analysed_fps": min((len(r.frames) - c) / wall for r, c in zip(recs, counts, strict=True)),
        "decoded_fps": sum(s.stats.decoded - d for s, d in zip(sources, decoded, strict=True))
        / wall
        / len(sources),
        "source_fps": sum(s.stats.packets - p for s, p in zip(sources, packets, strict=True))
        / wall
        / len(sources),
    }


def test_eight_720p_cameras_in_one_process(rtsp_server: ServerFactory, stream_media: dict[str, Path]) -> None:
    clips = [stream_media["plaza"], stream_media["night"]] * 4
    mounts = {f"full{i}": clip for i, clip in enumerate(clips)} | {
        f"key{i}": clip for i, clip in enumerate(clips)
    }
    server = rtsp_server(mounts)

    results = {}
    for mode, keyframes_only in (("full", False), ("key", True)):
        recs = [Recorder() for _ in clips]
        sources = [
            RtspSource(
                f"{mode}{i}",
                fast_config(
                    server.url(f"{mode}{i}"), decode_keyframes_only=keyframes_only, stall_timeout_s=15
                ),
                on_frame=rec.frame,
            )
            for i, rec in enumerate(recs)
        ]
        with running(*sources):
            results[mode] = measure(sources, recs, seconds=5.0)
            statuses = [s.status() for s in sources]
        assert all(r.frames for r in recs), "every camera delivers frames"
        assert all(st.width == 1280 and st.height == 720 for st in statuses)
        print(f"\n8 x 720p25 RTSP cameras, {mode} decode: {results[mode]}")

    full, key = results["full"], results["key"]
    assert full["source_fps"] == pytest.approx(25, rel=0.1)
    assert full["decoded_fps"] == pytest.approx(25, rel=0.1)
    assert full["analysed_fps"] == pytest.approx(5, rel=0.15)
    assert key["source_fps"] == pytest.approx(25, rel=0.1)
    assert key["decoded_fps"] < 1.0  # keyframes every 7-9 s in these clips
    assert key["cpu_per_camera"] < 0.5 * full["cpu_per_camera"]
