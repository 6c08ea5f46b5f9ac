"""The service on PostgreSQL keeps its accounts, sessions and audit log there (no ``security.db``): the
console login works, and another process on the same database (``khupho users``, a second API) sees
the same users, sessions and audit chain."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from api.auth.db import open_security_db
from api.auth.deps import SESSION_COOKIE
from api.auth.security import ADMIN_PASSWORD_ENV, Security
from api.cli import app as cli
from api.config import parse_config
from api.demo import DEMO_CAMERAS
from api.service import Service
from tests.conftest_pg import PgServer


@pytest.fixture
def database(postgres: PgServer) -> Iterator[dict[str, object]]:
    """A new database on the session's server, as a ``storage.database`` section."""
    name = f"svc_{uuid.uuid4().hex[:12]}"
    with postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield {
        "type": "postgres",
        "host": postgres.host,
        "port": postgres.port,
        "dbname": name,
        "user": postgres.user,
        "password": postgres.password,
    }
    with postgres.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
def test_service_on_postgres_keeps_no_security_file(
    tmp_path: Path,
    footage_dir: Path,
    models_dir: Path,
    database: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    spec = DEMO_CAMERAS["intersection"]
    raw = {
        "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
        "storage": {
            "database": database,
            "objects": {"type": "local", "root": str(tmp_path / "media")},
            "snapshots": {"enabled": False},
            "state_dir": str(tmp_path / "state"),
        },
        "api": {"port": 0},
        "cameras": {
            "intersection": {
                "replay": {"path": str(footage_dir / spec["clip"]), "analysis_fps": 2, "loop": False},
                "events": {"rules": spec["rules"]},
            }
        },
    }
    config_file = tmp_path / "khupho.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    service = Service(parse_config(raw))
    password = service.first_admin_password
    assert password is not None
    urls: list[str] = []
    thread = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
    thread.start()
    other: Security | None = None
    try:
        deadline = time.monotonic() + 30
        while not urls and time.monotonic() < deadline:
            time.sleep(0.1)
        assert urls, "the service did not come up"
        with httpx.Client(base_url=urls[0], timeout=10) as client:
            # The console's login form; the first administrator must pick a new password first.
            r = client.post("/login", data={"username": "admin", "password": password})
            assert r.status_code == 303 and r.headers["location"] == "/console/password", r.text
            assert client.get("/console/password").status_code == 200
            token = client.cookies[SESSION_COOKIE]

        # Another process on the same database: the service's session and audit rows are there.
        other = Security.open(open_security_db(parse_config(raw).storage.database), service.security.scope)
        principal = other.auth.session_principal(token)
        assert principal is not None and principal.name == "admin" and principal.must_change
        # An account added by the command line (its own process) logs in to the running service.
        monkeypatch.setenv("KHUPHO_PASSWORD", "night-shift-password-7")
        result = CliRunner().invoke(
            cli, ["users", "add", "op1", "--role", "operator", "--scope", "kp1", "--config", str(config_file)]
        )
        assert result.exit_code == 2 and "kp1" in result.output  # no khu phố kp1 in this config
        result = CliRunner().invoke(
            cli, ["users", "add", "op1", "--role", "admin", "--config", str(config_file)]
        )
        assert result.exit_code == 0, result.output
        with httpx.Client(base_url=urls[0], timeout=10) as client:
            r = client.post("/login", data={"username": "op1", "password": "night-shift-password-7"})
            assert r.status_code == 303 and r.headers["location"] == "/console", r.text
        actions = [r.action for r in other.audit.all()]
        assert actions == ["user.add", "login", "user.add", "login"]
        result = CliRunner().invoke(cli, ["audit", "verify", "--config", str(config_file)])
        assert result.exit_code == 0 and "intact: 4 rows" in result.output, result.output
    finally:
        if other is not None:
            other.close()
        service.shutdown()
        thread.join(60)
    assert not thread.is_alive()
    assert not list(tmp_path.rglob("*.db")), "a SQLite file was written beside a PostgreSQL service"
