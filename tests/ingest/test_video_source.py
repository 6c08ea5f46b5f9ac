from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ingest import Frame, RateSelector, SourceError, VideoSource
from ingest.decode import BgrConverter, DecodeStats, FrameReader

from .conftest import FOOTAGE, write_audio_only, write_clip

CAMERA = "porch"


# ---------------------------------------------------------------- happy path on synthetic clips


def test_yields_bgr_frames_with_stream_times(clip_25fps: Path) -> None:
    src = VideoSource(clip_25fps, camera=CAMERA, analysis_fps=5)
    assert (src.info.width, src.info.height, src.info.fps, src.info.frame_count) == (320, 240, 25.0, 100)
    assert src.info.codec == "h264" and src.info.duration == pytest.approx(4.0)
    frames = list(src)
    assert all(isinstance(f, Frame) and f.camera == CAMERA for f in frames)
    assert [f.pts for f in frames] == pytest.approx([i * 0.2 for i in range(20)])
    assert [f.index for f in frames] == list(range(0, 100, 5))
    img = frames[0].image
    assert img.dtype == np.uint8 and img.shape == (240, 320, 3) and img.flags.c_contiguous
    # BGR order: the synthetic picture is red on top, blue at the bottom.
    top, bottom = img[20:100, 200:300].mean(axis=(0, 1)), img[140:220, 200:300].mean(axis=(0, 1))
    assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2]
    assert (src.stats.packets, src.stats.decoded, src.stats.picked) == (100, 100, 20)


def test_29_97_fps_source_gives_five_per_second(clip_ntsc: Path) -> None:
    src = VideoSource(clip_ntsc, camera=CAMERA, analysis_fps=5)
    assert src.info.fps == pytest.approx(29.97, abs=0.01)
    frames = list(src)
    duration = 180 * 1001 / 30000
    assert abs(len(frames) - duration * 5) <= 1
    assert np.all(np.diff([f.pts for f in frames]) > 0)


def test_no_analysis_rate_yields_every_frame_and_iterating_again_reopens(clip_25fps: Path) -> None:
    src = VideoSource(clip_25fps, camera=CAMERA)
    first = [f.index for f in src]
    second = [f.index for f in src]
    assert first == second == list(range(100))


def test_only_picked_frames_are_converted(clip_25fps: Path) -> None:
    """Frames that are not analysed never leave YUV: count real conversions in the decode loop."""
    converted: list[float] = []
    to_bgr = BgrConverter()

    def counting_convert(frame: av.VideoFrame) -> np.ndarray:
        converted.append(float(frame.pts * frame.time_base))
        return to_bgr(frame)

    container = av.open(str(clip_25fps))
    try:
        stats = DecodeStats()
        reader = FrameReader(
            container,
            container.streams.video[0],
            camera=CAMERA,
            source=str(clip_25fps),
            raw_target=str(clip_25fps),
            selector=RateSelector(2),
            stats=stats,
            fps=25.0,
            convert=counting_convert,
        )
        frames = list(reader)
    finally:
        container.close()
    assert stats.decoded == 100
    assert len(converted) == len(frames) == stats.picked == 8
    assert converted == pytest.approx([f.pts for f in frames])


def test_keyframes_only_decodes_just_the_keyframes(clip_25fps: Path) -> None:
    src = VideoSource(clip_25fps, camera=CAMERA, analysis_fps=1, decode_keyframes_only=True)
    frames = list(src)
    # Keyframe every 10 frames (0.4 s); at 1 fps the picks are the keyframes at 0, 1.2, 2.0, 3.2.
    assert src.stats.packets == 100
    assert src.stats.decoded == 10
    assert [f.pts for f in frames] == pytest.approx([0.0, 1.2, 2.0, 3.2])
    assert [f.index for f in frames] == [0, 30, 50, 80]


def test_missing_timestamps_fall_back_to_index_over_fps(tmp_path: Path) -> None:
    raw = write_clip(tmp_path / "raw.h264", ((160, 120, 20),), container_format="h264")
    src = VideoSource(raw, camera=CAMERA, analysis_fps=5)
    frames = list(src)
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_resolution_change_mid_stream(clip_resolution_change: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest"):
        frames = list(VideoSource(clip_resolution_change, camera=CAMERA))
    shapes = [f.image.shape[:2] for f in frames]
    assert shapes[:30] == [(360, 640)] * 30
    assert shapes[30:60] == [(240, 320)] * 30
    assert shapes[60:] == [(272, 480)] * 30
    changes = [r.getMessage() for r in caplog.records if "resolution changed" in r.getMessage()]
    assert len(changes) == 2 and "640x360 to 320x240" in changes[0] and CAMERA in changes[0]


def test_max_pixels_refuses_oversized_video(clip_25fps: Path) -> None:
    with pytest.raises(SourceError) as err:
        list(VideoSource(clip_25fps, camera=CAMERA, max_pixels=320 * 200))
    assert err.value.kind == "too_large" and "320x240" in str(err.value)


@pytest.mark.slow
def test_8k_frames_decode(tmp_path: Path) -> None:
    big = write_clip(tmp_path / "8k.mp4", ((7680, 4320, 2),), gop=1)
    frames = list(VideoSource(big, camera=CAMERA))
    assert [f.image.shape for f in frames] == [(4320, 7680, 3)] * 2


# ---------------------------------------------------------------- bad inputs


def assert_names(err: SourceError, path: Path, kind: str, reason: str) -> None:
    text = str(err)
    assert err.kind == kind, text
    assert f"'{CAMERA}'" in text and str(path) in text and reason in text.lower(), text


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as err:
        VideoSource(path, camera=CAMERA)
    assert_names(err.value, path, "not_found", "no such file")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        VideoSource(tmp_path, camera=CAMERA)
    assert_names(err.value, tmp_path, "not_found", "directory")


def test_zero_byte_file(make_file: Callable[[str, bytes], Path]) -> None:
    path = make_file("empty.mp4", b"")
    with pytest.raises(SourceError) as err:
        VideoSource(path, camera=CAMERA)
    assert_names(err.value, path, "empty", "empty")


def test_random_bytes(make_file: Callable[[str, bytes], Path], random_bytes: bytes) -> None:
    path = make_file("noise.mp4", random_bytes)
    with pytest.raises(SourceError) as err:
        VideoSource(path, camera=CAMERA)
    assert_names(err.value, path, "unrecognised", "not a video file")


def test_text_file(make_file: Callable[[str, bytes], Path]) -> None:
    path = make_file("notes.mp4", b"camera notes: replace the porch camera's power supply\n" * 20)
    with pytest.raises(SourceError) as err:
        VideoSource(path, camera=CAMERA)
    assert_names(err.value, path, "unrecognised", "not a video file")


def test_audio_only_file(tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "doorbell.m4a")
    with pytest.raises(SourceError) as err:
        VideoSource(path, camera=CAMERA)
    assert_names(err.value, path, "no_video", "no video stream")
    assert "audio aac" in str(err.value)


def test_truncated_file_without_index(tmp_path: Path, clip_25fps: Path) -> None:
    # moov atom at the end (PyAV's default): cut short, the file has no index at all.
    whole = write_clip(tmp_path / "moov_last.mp4", ((320, 240, 100),))
    data = whole.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as err:
        VideoSource(cut, camera=CAMERA)
    assert_names(err.value, cut, "unrecognised", "cut short")


def test_truncated_file_yields_what_decodes_then_warns(
    tmp_path: Path, clip_25fps: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = clip_25fps.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoSource(cut, camera=CAMERA)
    with caplog.at_level(logging.WARNING, logger="ingest"):
        frames = list(src)
    assert 20 < len(frames) < 100
    assert src.stats.truncated
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "ended early" in warning and "of 100 frames" in warning and str(cut) in warning

    strict = VideoSource(cut, camera=CAMERA, strict=True)
    got: list[Frame] = []
    with pytest.raises(SourceError) as err:
        for frame in strict:
            got.append(frame)
    assert len(got) == len(frames), "strict mode still yields every decodable frame first"
    assert_names(err.value, cut, "damaged", "truncated")


def test_corrupt_middle_is_skipped_with_a_warning(
    tmp_path: Path, clip_25fps: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray(clip_25fps.read_bytes())
    rng = np.random.default_rng(7)
    start = len(data) // 2
    data[start : start + 6000] = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbled.mp4"
    bad.write_bytes(bytes(data))
    src = VideoSource(bad, camera=CAMERA)
    with caplog.at_level(logging.WARNING, logger="ingest"):
        frames = list(src)
    assert src.stats.decode_errors > 0
    assert 50 < len(frames) < 100
    assert any("undecodable" in r.getMessage() and str(bad) in r.getMessage() for r in caplog.records)
    assert np.all(np.diff([f.pts for f in frames]) > 0)
    with pytest.raises(SourceError) as err:
        list(VideoSource(bad, camera=CAMERA, strict=True))
    assert_names(err.value, bad, "damaged", "undecodable")


def test_bad_analysis_rate_is_rejected_up_front(clip_25fps: Path) -> None:
    with pytest.raises(ValueError, match="analysis fps"):
        VideoSource(clip_25fps, camera=CAMERA, analysis_fps=0)


# ---------------------------------------------------------------- real footage


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FOOTAGE))
def test_real_footage_opens_and_yields_frames(footage_dir: Path, name: str) -> None:
    width, height, fps, frames_expected = FOOTAGE[name]
    src = VideoSource(footage_dir / name, camera="footage", analysis_fps=5)
    assert (src.info.width, src.info.height) == (width, height)
    assert src.info.fps == pytest.approx(fps)
    frames = list(src)
    # The README's counts are decoded frames (the highway AVI has 750 packets, 748 pictures).
    assert src.stats.decoded == frames_expected
    assert not src.stats.truncated and src.stats.decode_errors == 0
    duration = frames_expected / fps
    assert abs(len(frames) - duration * 5) <= 2
    assert all(f.image.shape == (height, width, 3) for f in frames)
    assert np.all(np.diff([f.pts for f in frames]) > 0)


@pytest.mark.slow
def test_avi_with_packed_b_frames_gets_increasing_times(footage_dir: Path) -> None:
    """PyAV hands this AVI's frames pts in decode order; every frame must still get a later time."""
    src = VideoSource(footage_dir / "traffic_highway_cctv_320x240_mpeg4.avi", camera="highway")
    pts = [f.pts for f in src]
    assert len(pts) == 748
    steps = np.diff(pts)
    assert np.all(steps > 0)
    # After the first few frames (while pts still looks trustworthy) times follow dts: 0.04 s apart.
    assert np.all(np.isclose(steps[5:-1], 0.04))
    assert pts[-1] == pytest.approx(29.96, abs=0.01)


def test_fraction_rates_are_reported(clip_ntsc: Path) -> None:
    assert VideoSource(clip_ntsc).info.time_base == Fraction(1, 90_000)
