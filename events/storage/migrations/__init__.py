"""Schema migrations: numbered SQL files per database, applied in order at start-up.

``migrations/<dialect>/NNNN_name.sql`` holds the statements of version NNNN.
Applied versions are recorded in ``schema_migrations``; a database whose newest
version is unknown to this khupho (written by a newer one) is refused. Each
version runs in its own transaction together with its bookkeeping row, so a
crash mid-way leaves the database at the previous version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` ("sqlite", "postgres"), oldest first."""
    found = []
    for entry in resources.files(__package__).joinpath(dialect).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
        statements = tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return found


def latest(dialect: str) -> int:
    return migrations(dialect)[-1].version
