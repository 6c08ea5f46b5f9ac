"""The pure parts of live ingest: config validation, backoff, the status state machine."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest import BackoffConfig, CameraSourceConfig, CameraState
from ingest.reconnect import Backoff
from ingest.status import RateMeter, StatusTracker

SECRET_URL = "rtsp://admin:hunter2-secret@10.0.0.7:554/Streaming/Channels/101"

# ---------------------------------------------------------------- config


def test_config_defaults_and_masking() -> None:
    cfg = CameraSourceConfig(url=SECRET_URL)
    assert cfg.transport == "tcp" and cfg.analysis_fps == 5.0 and not cfg.decode_keyframes_only
    assert cfg.masked_url == "rtsp://admin:***@10.0.0.7:554/Streaming/Channels/101"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


def test_config_rejects_unknown_fields_with_their_path() -> None:
    with pytest.raises(ValidationError) as err:
        CameraSourceConfig(url=SECRET_URL, backoff={"initial_s": 1, "maximum": 3})
    assert "backoff.maximum" in str(err.value) and "Extra inputs are not permitted" in str(err.value)


def test_config_validation_errors_never_echo_the_password() -> None:
    with pytest.raises(ValidationError) as err:
        CameraSourceConfig(url="rstp://admin:hunter2-secret@cam/x", open_timeout_s=-1)
    text = str(err.value)
    assert "hunter2" not in text
    assert "unsupported camera URL 'rstp://admin:***@cam/x'" in text and "open_timeout_s" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"transport": "http"},
        {"analysis_fps": 0},
        {"queue_size": 0},
        {"backoff": {"initial_s": 5, "max_s": 1}},
        {"backoff": {"multiplier": 0.5}},
        {"backoff": {"jitter": 1.5}},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CameraSourceConfig(url=SECRET_URL, **bad)


def test_config_accepts_analysis_fps_none_and_udp() -> None:
    cfg = CameraSourceConfig(url=SECRET_URL, analysis_fps=None, transport="udp")
    assert cfg.analysis_fps is None and cfg.transport == "udp"


# ---------------------------------------------------------------- backoff


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(BackoffConfig(initial_s=0.5, max_s=4, multiplier=2, jitter=0))
    assert [b.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    b.reset()
    assert b.next_delay() == 0.5


def test_backoff_survives_very_long_outages() -> None:
    b = Backoff(BackoffConfig(initial_s=1, max_s=30, multiplier=10, jitter=0.3), rng=random.Random(0))
    delays = [b.next_delay() for _ in range(10_000)]
    assert max(delays) <= 30 and min(delays[10:]) >= 30 * 0.7


@given(
    initial=st.floats(0.01, 5),
    extra=st.floats(0, 60),
    multiplier=st.floats(1, 5),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_properties(
    initial: float, extra: float, multiplier: float, jitter: float, seed: int
) -> None:
    maximum = initial + extra
    cfg = BackoffConfig(initial_s=initial, max_s=maximum, multiplier=multiplier, jitter=jitter)
    b = Backoff(cfg, rng=random.Random(seed))
    base = initial
    for _ in range(60):
        delay = b.next_delay()
        assert 0 <= delay <= maximum + 1e-9
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
        base = min(maximum, base * multiplier)


def test_backoff_jitter_spreads_cameras_apart() -> None:
    firsts = {round(Backoff(BackoffConfig(), rng=random.Random(i)).next_delay(), 3) for i in range(50)}
    assert len(firsts) > 40 and min(firsts) >= 0.8 and max(firsts) <= 1.2


# ---------------------------------------------------------------- status


class Clock:
    """Controllable time for the state machine (monotonic and wall)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(grace: float = 5.0) -> tuple[StatusTracker, Clock, list[tuple[str, str, str, str | None]]]:
    clock = Clock()
    seen: list[tuple[str, str, str, str | None]] = []
    t = StatusTracker(
        "door",
        "rtsp://admin:***@cam/x",
        grace,
        on_status=lambda *, camera, old, new, error: seen.append((camera, str(old), str(new), error)),
        clock=clock,
        wall=clock,
    )
    return t, clock, seen


def test_status_lifecycle_with_grace() -> None:
    t, clock, seen = tracker(grace=5)
    assert t.state is CameraState.CONNECTING
    t.frame()
    t.frame()
    assert seen == [("door", "connecting", "online", None)]
    clock.now += 10
    t.connection_lost("stream ended")
    assert t.state is CameraState.CONNECTING
    clock.now += 4.9
    t.check()
    assert t.state is CameraState.CONNECTING, "within the grace period"
    t.connection_lost("connection refused")
    clock.now += 0.2
    t.check()
    assert t.state is CameraState.OFFLINE
    assert seen[-1] == ("door", "connecting", "offline", "connection refused")
    t.frame()
    t.stopped()
    assert [s[1:3] for s in seen] == [
        ("connecting", "online"),
        ("online", "connecting"),
        ("connecting", "offline"),
        ("offline", "online"),
        ("online", "stopped"),
    ]


def test_status_flap_within_grace_never_reports_offline() -> None:
    t, clock, seen = tracker(grace=2)
    for _ in range(20):
        t.frame()
        clock.now += 1
        t.connection_lost("stream ended")
        clock.now += 1.5
        t.check()
    assert "offline" not in [s[2] for s in seen]


def test_status_zero_grace_goes_offline_at_once() -> None:
    t, _clock, seen = tracker(grace=0)
    t.frame()
    t.connection_lost("refused")
    assert t.state is CameraState.OFFLINE and seen[-1][2] == "offline"


def test_callback_errors_do_not_break_the_tracker() -> None:
    def boom(**_kwargs: object) -> None:
        raise RuntimeError("consumer bug")

    t = StatusTracker("door", "rtsp://cam/x", 1.0, on_status=boom)
    t.frame()
    assert t.state is CameraState.ONLINE


def test_rate_meter() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(0, 41):
        meter.sample(i * 0.1, i * 3)  # 30 per second for 4 s
    assert meter.rate() == pytest.approx(30.0)
    for i in range(41, 81):
        meter.sample(i * 0.1, 120)  # then nothing
    assert meter.rate() == pytest.approx(0.0)
