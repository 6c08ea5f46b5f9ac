"""The cluster: section: clear errors for what cannot work, and the CLI's answers without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.config import ConfigError, parse_config

CAMERA = {"replay": {"path": "clip.mp4"}}
PG = {"type": "postgres", "host": "db.internal", "password": "s3cret-pw"}
S3 = {
    "type": "s3",
    "endpoint": "s3.internal:9000",
    "bucket": "khupho",
    "access_key": "k",
    "secret_key": "s" * 16,
}


def _config(**storage: object) -> dict:
    return {"cameras": {"gate": CAMERA}, "storage": storage, "cluster": {"address": "10.0.0.5:6379"}}


def test_a_cluster_needs_shared_storage() -> None:
    with pytest.raises(ConfigError, match=r"cluster: needs storage\.database\.type: postgres"):
        parse_config(_config())
    with pytest.raises(ConfigError, match=r"cluster: needs storage\.objects\.type: s3"):
        parse_config(_config(database=PG))
    config = parse_config(_config(database=PG, objects=S3))
    assert config.cluster is not None and config.cluster.rehome_after_s == 5.0


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("rehome_after_s", 0, "cluster.rehome_after_s"),
        ("namespace", "a b", "cluster.namespace"),
        ("max_moves_per_round", -1, "cluster.max_moves_per_round"),
        ("nodes", 3, "cluster.nodes"),  # unknown field
    ],
)
def test_bad_cluster_fields_are_named(field: str, value: object, where: str) -> None:
    data = _config(database=PG, objects=S3)
    data["cluster"][field] = value
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")) as err:
        parse_config(data)
    assert "s3cret-pw" not in str(err.value)


def test_cluster_commands_need_a_cluster_section(tmp_path: Path) -> None:
    cfg = tmp_path / "khupho.yaml"
    cfg.write_text("cameras:\n  gate:\n    replay: {path: clip.mp4}\n")
    for command in ("status", "stop"):
        result = CliRunner().invoke(app, ["cluster", command, "--config", str(cfg)])
        assert result.exit_code == 2
        assert "has no cluster: section" in result.output
