"""The caller of a request: a user (by session cookie) or an API key, with a role and a scope."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    ADMIN = "admin"  # everything: cameras, users, audit
    SUPERVISOR = "supervisor"  # every khu phố of its ward(s); acts on review items
    OPERATOR = "operator"  # its khu phố; acts on review items
    VIEWER = "viewer"  # its khu phố; reads only
    METRICS = "metrics"  # API keys only: GET /metrics and nothing else


ACTING_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR})
USER_ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR, Role.VIEWER)


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "key"]
    id: str  # user id or API key id (never shown in error bodies)
    name: str  # username, or "key:<name>"
    role: Role
    scopes: tuple[str, ...]  # ward ids (supervisor) or khu phố ids (operator, viewer)
    unredacted: bool = False  # may see snapshots without face blur (with a reason, audited)
    session_id: str | None = None  # hash of the session token, when logged in by cookie
    csrf: str | None = None
    must_change: bool = False  # a one-time password: the console sends the user to change it first

    @property
    def can_act(self) -> bool:
        return self.role in ACTING_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_unredact(self) -> bool:
        return self.role is Role.ADMIN or self.unredacted
