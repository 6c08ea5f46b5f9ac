from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from models import ChecksumMismatch, ModelNotFound, fetch, resolve_model, sha256_of


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("KHUPHO_MODEL", "KHUPHO_MODELS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KHUPHO_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_order_flag_env_config_default(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path
) -> None:
    monkeypatch.setenv("KHUPHO_MODELS_DIR", str(models_dir))
    assert resolve_model() == models_dir / "yolov8n-coco.onnx"  # default name, found in the models dir
    assert resolve_model(config_value="yolov8n-coco-int8-b1") == models_dir / "yolov8n-coco-int8-b1.onnx"
    monkeypatch.setenv("KHUPHO_MODEL", "yolov8n-coco-int8-b1.onnx")
    assert resolve_model(config_value="yolov8n-coco") == models_dir / "yolov8n-coco-int8-b1.onnx"
    explicit = models_dir / "yolov8n-coco.onnx"
    assert resolve_model(flag=str(explicit)) == explicit


def test_cache_dir_is_searched(isolated_env: Path) -> None:
    cached = isolated_env / "cache" / "models" / "mine.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_model(flag="mine.onnx") == cached


def test_missing_model_says_where_it_looked(isolated_env: Path) -> None:
    with pytest.raises(
        ModelNotFound, match=r"'yolov8n-coco' \(yolov8n-coco.onnx\) not found in .*cache.*KHUPHO_MODELS_DIR"
    ):
        resolve_model()
    with pytest.raises(ModelNotFound, match=r"model file not found: /nowhere/m\.onnx"):
        resolve_model(flag="/nowhere/m.onnx")


def test_fetch_verifies_checksum(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    (root / "m.onnx").write_bytes(b"model bytes" * 1000)
    good = hashlib.sha256(b"model bytes" * 1000).hexdigest()
    dest = tmp_path / "dl" / "m.onnx"
    assert fetch(f"{base}/m.onnx", dest, good) == dest
    assert sha256_of(dest) == good
    (root / "m.onnx").write_bytes(b"tampered")
    assert fetch(f"{base}/m.onnx", dest, good) == dest  # already there and verified: no download
    other = tmp_path / "dl" / "other.onnx"
    with pytest.raises(ChecksumMismatch, match="does not match the pinned"):
        fetch(f"{base}/m.onnx", other, good)
    assert not other.exists() and not list(other.parent.glob("*.part"))
