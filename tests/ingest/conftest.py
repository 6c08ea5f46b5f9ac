"""Fixtures for the ingest tests: synthetic media made with PyAV, damaged files, footage."""

from __future__ import annotations

import functools
import os
import random
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

FOOTAGE = {
    "traffic_intersection_cctv_640x480_h264.mp4": (640, 480, 30.0, 909),
    "traffic_india_junction_motorbikes_640x360_h264.mp4": (640, 360, 30.0, 1170),
    "traffic_highway_cctv_320x240_mpeg4.avi": (320, 240, 25.0, 748),
    "pedestrians_plaza_overhead_1280x720_h264.mp4": (1280, 720, 25.0, 341),
    "security_residential_lane_night_1280x720_h264.mp4": (1280, 720, 25.0, 1081),
    "parking_lot_overhead_768x432_h264.mp4": (768, 432, 12.5, 377),
    "pedestrians_street_pets_768x576_msmpeg4.avi": (768, 576, 10.0, 795),
}


def pattern_image(width: int, height: int, i: int) -> np.ndarray:
    """A BGR picture that changes every frame: a white bar moving right over a red/blue split."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2, :, 2] = 200  # top half red (BGR)
    img[height // 2 :, :, 0] = 200  # bottom half blue
    x = (i * 8) % max(1, width - 16)
    img[:, x : x + 16] = 255
    return img


def write_clip(
    path: Path,
    segments: Sequence[tuple[int, int, int]] = ((320, 240, 50),),
    *,
    fps: Fraction | int | float = 25,
    gop: int = 10,
    bframes: int = 0,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
    time_base: Fraction | None = None,
) -> Path:
    """Encode H.264 test video with PyAV: one or more (width, height, frames) segments.

    Several segments of different sizes give a mid-stream resolution change (each segment
    starts with a keyframe carrying its own SPS/PPS; use an MPEG-TS path for that).
    """
    rate = Fraction(fps).limit_denominator(1001)
    tb = time_base or Fraction(1, 90_000)
    out = av.open(str(path), "w", format=container_format, options=options or {})
    stream = out.add_stream("libx264", rate=rate)
    stream.time_base = tb
    index = 0
    try:
        for width, height, count in segments:
            if index == 0:
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.options = {"preset": "ultrafast", "g": str(gop), "bf": str(bframes)}
                encoder = stream.codec_context
            else:
                encoder = av.CodecContext.create("libx264", "w")
                encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
                encoder.time_base, encoder.framerate = tb, rate
                encoder.options = {"preset": "ultrafast", "g": str(gop), "bf": str(bframes)}
            for _ in range(count):
                frame = av.VideoFrame.from_ndarray(pattern_image(width, height, index), format="bgr24")
                frame.pts = round(index / rate / tb)
                frame.time_base = tb
                for packet in encoder.encode(frame):
                    packet.stream = stream
                    out.mux(packet)
                index += 1
            for packet in encoder.encode(None):
                packet.stream = stream
                out.mux(packet)
    finally:
        out.close()
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC-in-MP4 file with no video stream (a "recording" from an audio-only device)."""
    out = av.open(str(path), "w")
    stream = out.add_stream("aac", rate=16_000)
    stream.layout = "mono"
    samples = int(16_000 * seconds)
    tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 16_000) * 0.3).astype(np.float32)
    frame_size = 1024
    for start in range(0, samples, frame_size):
        chunk = tone[start : start + frame_size].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = 16_000
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ingest-media")


@pytest.fixture(scope="session")
def clip_25fps(media_dir: Path) -> Path:
    """4 s of 320x240 at 25 fps, keyframe every 10 frames, moov atom first (faststart)."""
    return write_clip(
        media_dir / "clip25.mp4", ((320, 240, 100),), fps=25, options={"movflags": "+faststart"}
    )


@pytest.fixture(scope="session")
def clip_ntsc(media_dir: Path) -> Path:
    """6 s of 29.97 fps (30000/1001) with B-frames: reordered pts, dts in decode order."""
    return write_clip(media_dir / "clip2997.mp4", ((320, 240, 180),), fps=Fraction(30000, 1001), bframes=2)


@pytest.fixture(scope="session")
def clip_resolution_change(media_dir: Path) -> Path:
    return write_clip(media_dir / "reschange.ts", ((640, 360, 30), (320, 240, 30), (480, 272, 30)))


@pytest.fixture()
def make_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def make(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


@pytest.fixture()
def random_bytes() -> bytes:
    return random.Random(1234).randbytes(256 * 1024)


# ---------------------------------------------------------------- a real RTSP server (GStreamer)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
APT_HINT = (
    "apt-get install -y --no-install-recommends ffmpeg gir1.2-gst-rtsp-server-1.0 python3-gi "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly "
    "gstreamer1.0-libav gstreamer1.0-tools"
)


@functools.cache
def require_tools() -> None:
    """Fail (not skip: CI must notice) when the RTSP server's system packages are missing."""
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or shutil.which("ffmpeg") is None:
        pytest.fail(f"RTSP tests need GStreamer's RTSP server and ffmpeg: {APT_HINT}", pytrace=False)


class RtspServer:
    """One ``rtsp_server.py`` process on 127.0.0.1; can be killed, frozen and restarted on its port."""

    def __init__(
        self,
        mounts: dict[str, Path | str],
        auth: dict[str, tuple[str, str]] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.mounts = {name: str(spec) for name, spec in mounts.items()}
        self.auth = auth or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = (log_dir or Path(tempfile.gettempdir())) / f"rtsp-server-{id(self)}.log"
        self.starts = 0

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}/{mount}"

    def start(self, timeout: float = 10.0) -> RtspServer:
        assert self.proc is None, "already running"
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for name, spec in self.mounts.items():
            args += ["--mount", f"{name}={spec}"]
        for name, (user, password) in self.auth.items():
            args += ["--auth", f"{name}={user}:{password}"]
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "ab") as log:
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
            line = self._read_ready(proc, deadline)
            if line is not None:
                break
            # Restart on a fixed port can race the old socket's release: retry until the deadline.
            self._reap(proc)
            if time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"RTSP server did not start: {args}\n{tail}")
            time.sleep(0.1)
        self.proc = proc
        self.port = int(line.split()[1])
        self.starts += 1
        return self

    @staticmethod
    def _read_ready(proc: subprocess.Popen[bytes], deadline: float) -> str | None:
        assert proc.stdout is not None
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.05)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    return None  # exited
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode()
                    return line if line.startswith("READY") else None
            elif proc.poll() is not None:
                return None
        return None

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes], term_timeout: float = 3.0) -> None:
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
                proc.terminate()
                try:
                    proc.wait(term_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            self._reap(proc)

    def kill(self) -> None:
        """The camera loses power: SIGKILL, no goodbye on the connection."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            try:
                proc.kill()
                proc.wait(5)
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture()
def rtsp_server(tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Factory of started RTSP servers; every process is stopped at teardown, whatever happened."""
    require_tools()
    servers: list[RtspServer] = []

    def make(mounts: dict[str, Path | str], auth: dict[str, tuple[str, str]] | None = None) -> RtspServer:
        server = RtspServer(mounts, auth, log_dir=tmp_path)
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="session")
def stream_media(media_dir: Path, footage_dir: Path) -> dict[str, Path]:
    """Files to serve as cameras, made once per session.

    The server plays a file once, so clips are looped with ``-stream_loop -c copy`` (no
    re-encode); the AVI is transcoded once to H.264 with a camera-like 0.8 s keyframe interval.
    """
    require_tools()
    out = media_dir / "streams"
    out.mkdir(exist_ok=True)
    highway = out / "highway.mp4"
    ffmpeg(
        "-i", str(footage_dir / "traffic_highway_cctv_320x240_mpeg4.avi"),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "20",
        "-pix_fmt", "yuv420p", "-an", "-movflags", "+faststart", str(highway),
    )  # fmt: skip
    media = {"highway": out / "highway_loop.mp4", "plaza": out / "plaza_loop.mp4", "night": out / "night.mp4"}
    ffmpeg("-stream_loop", "4", "-i", str(highway), "-c", "copy", str(media["highway"]))  # 150 s
    plaza = footage_dir / "pedestrians_plaza_overhead_1280x720_h264.mp4"
    ffmpeg("-stream_loop", "3", "-i", str(plaza), "-c", "copy", str(media["plaza"]))  # 55 s
    night = footage_dir / "security_residential_lane_night_1280x720_h264.mp4"
    ffmpeg("-i", str(night), "-c", "copy", str(media["night"]))  # 43 s
    media["reschange"] = write_clip(
        out / "reschange.ts", ((640, 360, 50), (320, 240, 50), (640, 360, 50)), gop=10
    )
    media["8k"] = write_clip(out / "8k.mp4", ((7680, 4320, 4),), fps=4, gop=1)
    media["no_pictures"] = without_idr(write_clip(out / "long_gop.ts", ((160, 120, 500),), gop=1000))
    return media


def without_idr(path: Path) -> Path:
    """Copy of an H.264 MPEG-TS file with its IDR slices cut out (SPS/PPS kept).

    Served over RTSP it is a camera whose packets keep coming while not one picture decodes
    (as after losing the keyframe of a very long GOP): only a stall watchdog notices.
    """
    out_path = path.with_name(path.stem + "_no_idr.ts")
    src = av.open(str(path))
    out = av.open(str(out_path), "w")
    try:
        stream = src.streams.video[0]
        out_stream = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_keyframe:
                nals = re.split(b"(?=\x00\x00\x01)", bytes(packet))
                stripped = av.Packet(b"".join(n for n in nals if len(n) < 4 or n[3] & 0x1F != 5))
                stripped.pts, stripped.dts, stripped.time_base = packet.pts, packet.dts, packet.time_base
                packet = stripped
            packet.stream = out_stream
            out.mux(packet)
    finally:
        out.close()
        src.close()
    return out_path
