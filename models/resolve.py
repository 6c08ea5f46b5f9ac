"""Finding a model file: flag, environment, config, then the model folders and the cache.

Resolution order for *which* model: the ``--model`` flag, ``KHUPHO_MODEL``,
the config's ``detector.model``, then ``DEFAULT_MODEL``. A value that is an
existing path is used as is; a name (``yolov8n-coco``) or bare file name is
looked for in ``KHUPHO_MODELS_DIR`` (``os.pathsep``-separated), then the cache
(``$KHUPHO_CACHE`` or ``~/.cache/khupho/models``); a known model with a URL
and pinned SHA-256 is downloaded into the cache and verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from models.registry import DEFAULT_MODEL, KNOWN_MODELS, spec_for

log = logging.getLogger(__name__)


class ModelNotFound(FileNotFoundError):
    """No model file could be found or fetched; the message says where it looked and how to get one."""


class ChecksumMismatch(ValueError):
    """A downloaded file's SHA-256 differs from the pinned one."""


def cache_dir() -> Path:
    env = os.environ.get("KHUPHO_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "khupho"
    return base / "models"


def model_dirs() -> list[Path]:
    raw = os.environ.get("KHUPHO_MODELS_DIR", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p] + [cache_dir()]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model(
    flag: str | Path | None = None, config_value: str | Path | None = None, download: bool = True
) -> Path:
    """The model file to load, following the resolution order above."""
    choice = flag or os.environ.get("KHUPHO_MODEL") or config_value or DEFAULT_MODEL
    candidate = Path(choice).expanduser()
    if candidate.is_file():
        return candidate
    if candidate.is_absolute() or len(candidate.parts) > 1:
        raise ModelNotFound(f"model file not found: {candidate}")
    spec = spec_for(str(choice))
    filename = spec.filename if spec else str(choice)
    dirs = model_dirs()
    for d in dirs:
        if (d / filename).is_file():
            return d / filename
    if spec and spec.url and spec.sha256 and download:
        return fetch(spec.url, cache_dir() / filename, spec.sha256)
    looked = ", ".join(str(d) for d in dirs)
    how = f"; get it from {spec.how}" if spec else f"; known models: {', '.join(KNOWN_MODELS)}"
    raise ModelNotFound(f"model {choice!r} ({filename}) not found in {looked} (set KHUPHO_MODELS_DIR){how}")


def fetch(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` if it is not already there with the right digest; verify before use.

    The file is written beside ``dest`` and renamed into place only after its
    SHA-256 matched, so a failed or tampered download never looks like a model.
    """
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if digest != sha256:
            raise ChecksumMismatch(
                f"{url}: SHA-256 {digest} does not match the pinned {sha256}; file discarded"
            )
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
