from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from api.config import ConfigError, load_config, parse_config
from tests.conftest import REPO


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "khupho.example.yaml")
    assert set(config.cameras) == {"gate_street", "sample_clip", "highway"}
    assert config.traffic_lanes() == {"highway": ["away"]}
    assert config.traffic.segments[0].name == "Cao tốc A1 (hướng Bắc)"
    gate = config.cameras["gate_street"]
    assert [r.type for r in gate.events.rules] == ["line_crossing", "zone_intrusion", "loitering", "crowding"]
    assert "secret" not in repr(gate.source)
    # Relative paths are anchored at the config file, not the working directory.
    assert config.storage.database.path == REPO / ".khupho/events.db"
    assert (
        config.cameras["sample_clip"].replay.path
        == REPO / "../shared/footage/traffic_intersection_cctv_640x480_h264.mp4"
    )


def test_wrong_field_names_camera_and_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "cameras": {
                    "gate": {
                        "replay": {"path": "x.mp4"},
                        "events": {
                            "rules": [{"name": "z", "type": "zone_intrusion", "polygon": [[0, 0], [1, 1]]}]
                        },
                    }
                }
            },
            "k.yaml",
        )
    lines = str(err.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("k.yaml: cameras.gate.events.rules.0.zone_intrusion.polygon: ")


def test_unknown_field_and_typo() -> None:
    with pytest.raises(
        ConfigError, match=r"cameras\.gate\.source\.analysis_fsp: Extra inputs are not permitted"
    ):
        parse_config({"cameras": {"gate": {"source": {"url": "rtsp://127.0.0.1/x", "analysis_fsp": 5}}}})


def test_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"cameras": {"gate": {"source": {"url": "ftp://user:hunter2@127.0.0.1/x"}}}})
    assert "hunter2" not in str(err.value) and "cameras.gate.source.url" in str(err.value)


def test_camera_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.gate: .*exactly one of 'source'"):
        parse_config({"cameras": {"gate": {}}})


def test_no_cameras() -> None:
    with pytest.raises(ConfigError, match="cameras: Field required"):
        parse_config({})


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "k.yaml"
    bad.write_text("cameras:\n  gate: [unclosed\n")
    with pytest.raises(ConfigError, match=r"k\.yaml: line \d+ column \d+ not valid YAML"):
        load_config(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "none.yaml")


def test_run_with_bad_config_exits_with_one_clear_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    cfg = tmp_path / "k.yaml"
    cfg.write_text("cameras:\n  gate:\n    source: {url: 'rtsp://127.0.0.1/x', analysis_fps: -1}\n")
    result = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "cameras.gate.source.analysis_fps: Input should be greater than 0" in result.output


def _stated_defaults(readme: str) -> dict[str, str]:
    """The defaults the README's configuration tables state, by field name."""
    section = readme[readme.index("## Configuration reference") : readme.index("### Rules")]
    stated: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):  # | `field` | default | meaning |
            stated[cells[0].strip("`")] = cells[1].strip("`")
        elif len(cells) == 2:  # | `section` | `field` default, `field` default ... |
            for name, value in re.findall(r"`(\w+)` ([\w./×]+)", cells[1]):
                stated.setdefault(name, value)
    return stated


def test_readme_states_the_models_defaults() -> None:
    """One default per setting, defined in its model: the README must say the same."""
    from api.config import ApiConfig, BatchingConfig
    from api.reports import ReportsConfig
    from detectors.config import DetectorConfig
    from events.storage.config import SnapshotConfig
    from ingest.config import CameraSourceConfig
    from pipeline.config import ClipConfig

    stated = _stated_defaults((REPO / "README.md").read_text())
    models = [
        DetectorConfig(),
        BatchingConfig(),
        SnapshotConfig(),
        ApiConfig(),
        ReportsConfig(),
        CameraSourceConfig(url="rtsp://h/p"),
        ClipConfig(),
    ]
    checked = []
    for model in models:
        for name, value in model.model_dump().items():
            if stated.get(name, "required") == "required" or isinstance(value, bool | dict | list):
                continue
            text = stated[name]
            if isinstance(value, str):
                assert text == value, (type(model).__name__, name, text, value)
            else:
                number = math.prod(float(part) for part in text.split("×"))
                assert number == value, (type(model).__name__, name, text, value)
            checked.append(name)
    assert len(checked) >= 15, checked


def test_a_postgres_database_is_left_as_written(tmp_path: Path) -> None:
    """Relative paths are anchored at the config file; a PostgreSQL database has none to anchor."""
    cfg = tmp_path / "k.yaml"
    cfg.write_text(
        "storage:\n  database: {type: postgres, host: db.internal, dbname: cams}\n"
        "cameras:\n  gate: {source: {url: 'rtsp://127.0.0.1/x'}}\n"
    )
    database = load_config(cfg).storage.database
    assert database.type == "postgres" and database.host == "db.internal" and database.dbname == "cams"
    assert not hasattr(database, "path")


def test_readme_states_the_postgres_defaults() -> None:
    from events.storage.config import PostgresStoreConfig

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Event database") : readme.index("### Cameras")]
    stated = dict(re.findall(r"^- `(\w+)` ([\w.-]+)", section, flags=re.M))
    model = PostgresStoreConfig(type="postgres", host="h")
    defaults = {k: v for k, v in model.model_dump().items() if k not in ("type", "host", "password")}
    assert {k: str(v) for k, v in defaults.items()} == stated
