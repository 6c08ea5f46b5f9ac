"""Schema migrations: numbered SQL files per database, applied in order at start-up.

``migrations/<dialect>/NNNN_name.sql`` holds the statements of version NNNN.
Applied versions are recorded in ``schema_migrations``; a database whose newest
version is unknown to this khupho (written by a newer one) is refused. Each
version runs in its own transaction together with its bookkeeping row, so a
crash mid-way leaves the database at the previous version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def read_migrations(
    package: str, dialect: str, statements: Callable[[str], tuple[str, ...]], *, series: str = ""
) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``package``/``dialect``, oldest first, ``--`` comment lines
    dropped and cut into statements by ``statements``; numbered 1..n or a RuntimeError naming the
    ``series``. The security tables' series (``api/auth/migrations``) reads its files here too."""
    found = []
    for entry in resources.files(package).joinpath(dialect).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        lines = entry.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
        found.append(Migration(int(match.group(1)), match.group(2), statements(text)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{series}{dialect} migrations are not numbered 1..n: {versions}")
    return found


def _split_at_semicolons(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(";") if s.strip())


def migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` ("sqlite", "postgres"), oldest first."""
    return read_migrations(__package__, dialect, _split_at_semicolons)


def latest(dialect: str) -> int:
    return migrations(dialect)[-1].version
