"""The security parts of one service, opened together on the service's database."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from api.audit import AuditLog
from api.auth.config import AuthConfig
from api.auth.db import SecurityDb, SqliteSecurityDb
from api.auth.principal import Role
from api.auth.ratelimit import LoginLimiter
from api.auth.scope import ScopeIndex
from api.auth.store import AuthStore, UserError
from api.review.store import ReviewMetrics, ReviewStore, Severity
from events.model import EventType

log = logging.getLogger(__name__)

ADMIN_PASSWORD_ENV = "KHUPHO_ADMIN_PASSWORD"


@dataclass
class Security:
    db: SecurityDb
    auth: AuthStore
    audit: AuditLog
    review: ReviewStore
    scope: ScopeIndex
    config: AuthConfig
    limiter: LoginLimiter

    @classmethod
    def open(
        cls,
        db: SecurityDb | str | Path,
        scope: ScopeIndex,
        config: AuthConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
        severity_of: Callable[[str, str, EventType], Severity | None] | None = None,
        merge_gap_s: float = 60.0,
    ) -> Security:
        """On ``db``, the service's database (``api.auth.db.open_security_db``) or a SQLite file."""
        config = config or AuthConfig()
        if isinstance(db, str | Path):
            db = SqliteSecurityDb(db)
        return cls(
            db=db,
            auth=AuthStore(db),
            audit=AuditLog(db),
            review=ReviewStore(
                db,
                merge_gap_s=merge_gap_s,
                severity_of=severity_of,
                metrics=ReviewMetrics(registry) if registry is not None else None,
            ),
            scope=scope,
            config=config,
            limiter=LoginLimiter(
                db,
                window_s=config.login_window_s,
                per_account=config.max_failures_per_account,
                per_address=config.max_failures_per_address,
            ),
        )

    def ensure_admin(self) -> str | None:
        """On first start (no users at all) create ``admin``; returns its one-time password.

        The password comes from ``$KHUPHO_ADMIN_PASSWORD`` when set (then ``None`` is
        returned: the operator knows it), else it is random and must be changed at
        the first login. There is never a default password. Of several processes starting
        at once on one empty database, one creates it (and returns the password).
        """
        if self.auth.count_users():
            return None
        given = os.environ.get(ADMIN_PASSWORD_ENV)
        password = given or secrets.token_urlsafe(12)
        try:
            self.auth.add_user("admin", password, Role.ADMIN, [], must_change=not given)
        except UserError:
            if self.auth.user("admin") is not None:  # another process created it meanwhile
                return None
            raise
        self.audit.record("system", "user.add", "admin", role="admin", first_start=True)
        log.info("created the first administrator 'admin'")
        return None if given else password

    def close(self) -> None:
        self.db.close()
