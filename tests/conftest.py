from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("KHUPHO_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if not (root / "models").is_dir():
        pytest.fail(f"shared assets not found at {root}: set KHUPHO_SHARED")
    return root


@pytest.fixture(scope="session")
def footage_dir(shared_dir: Path) -> Path:
    return shared_dir / "footage"


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"
