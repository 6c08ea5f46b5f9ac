"""Traffic configuration: one setting per concept, wrong fields and references named by path."""

from __future__ import annotations

from typing import Any

import pytest

from api.config import ConfigError, parse_config
from events.publish.config import MqttConfig, WebhookConfig

CALIBRATION = {"image": [[0, 100], [40, 0], [60, 0], [100, 100]], "road": [[0, 0], [0, 50], [7, 50], [7, 0]]}
LANE = {"name": "up", "polygon": [[0, 100], [40, 0], [60, 0], [100, 100]]}


def config(**root: Any) -> dict[str, Any]:
    camera = root.pop("camera", {"calibration": CALIBRATION, "lanes": [LANE]})
    return {"cameras": {"cam": {"replay": {"path": "x.mp4"}, "traffic": camera}}, **root}


def errors(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "k.yaml")
    return str(err.value)


def test_a_valid_traffic_config() -> None:
    parsed = parse_config(config(traffic={"segments": [{"id": "s1", "name": "Lê Lợi", "lanes": ["cam/up"]}]}))
    assert parsed.traffic_lanes() == {"cam": ["up"]}
    assert parsed.cameras["cam"].traffic.speed.min_span_s == 0.5


def test_segments_must_name_existing_lanes() -> None:
    msg = errors(config(traffic={"segments": [{"id": "s1", "name": "X", "lanes": ["cam/down"]}]}))
    assert "traffic segment 's1': no such camera lane: cam/down" in msg


def test_extra_fields_are_errors_with_their_path() -> None:
    msg = errors(config(camera={"calibration": CALIBRATION, "lanes": [{**LANE, "speed_limit": 50}]}))
    assert "k.yaml: cameras.cam.traffic.lanes.0.speed_limit: Extra inputs are not permitted" in msg
    assert "traffic.bogus" in errors(config(traffic={"bogus": 1}))


def test_degenerate_calibration_and_thresholds() -> None:
    flat = {"image": [[0, 0], [1, 1], [2, 2], [0, 5]], "road": CALIBRATION["road"]}
    assert "three of the four image points are on one line" in errors(config(camera={"calibration": flat}))
    bad = config(traffic={"congestion": {"heavy_below": 0.3, "congested_below": 0.5}})
    assert "stationary_below < congested_below < heavy_below" in errors(bad)
    assert "min_span_s must not exceed window_s" in errors(
        config(camera={"calibration": CALIBRATION, "speed": {"window_s": 0.4}})
    )


def test_publish_secrets_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KHUPHO_MQTT_PASSWORD", "from-env-pw")
    mqtt = MqttConfig(username="u")
    assert mqtt.password is not None and mqtt.password.get_secret_value() == "from-env-pw"
    assert "from-env-pw" not in repr(mqtt)
    hook = WebhookConfig(url="https://example.org/h", secret="s" * 16)
    assert "ssss" not in repr(hook)
    msg = errors(config(publish={"webhooks": [{"url": "https://x.org", "secret": "short"}]}))
    assert "publish.webhooks.0.secret" in msg and "short" not in msg
