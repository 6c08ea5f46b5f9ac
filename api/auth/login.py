"""Logging in and out: the rate limit, the audit record, the cookies."""

from __future__ import annotations

import logging
import math

from fastapi import HTTPException, Request, Response

from api.auth.deps import CSRF_COOKIE, SESSION_COOKIE, client_address
from api.auth.security import Security
from api.auth.store import UserInfo

log = logging.getLogger(__name__)


def login(
    security: Security, request: Request, response: Response, username: str, password: str
) -> tuple[UserInfo, str]:
    """Check the password, set the session and CSRF cookies; returns (user, CSRF token).

    Raises 429 (with Retry-After) while the account or the address is over its
    failure limit, and 401 for a wrong name or password (the same message for both).
    """
    address = client_address(request)
    username = username.strip()[:64]
    wait = security.limiter.blocked(username, address)
    if wait > 0:
        log.warning("login for %r from %s refused: too many failures", username, address)
        security.audit.record(username or "?", "login.throttled", username, address=address)
        raise HTTPException(
            status_code=429,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user = security.auth.check_password(username, password)
    if user is None:
        security.limiter.failed(username, address)
        log.warning("failed login for %r from %s", username, address)
        security.audit.record(username or "?", "login.failed", username, address=address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    security.limiter.succeeded(username)
    token, csrf = security.auth.new_session(user, security.config.session_ttl_s)
    secure = security.config.secure_cookies or request.url.scheme == "https"
    max_age = math.ceil(security.config.session_ttl_s)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/"
    )
    # Readable by the console's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure, path="/"
    )
    security.audit.record(user.username, "login", user.username, address=address)
    return user, csrf


def logout(
    security: Security, request: Request, response: Response, session_id: str | None, actor: str
) -> None:
    if session_id:
        security.auth.end_session(session_id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    security.audit.record(actor, "logout", actor, address=client_address(request))
