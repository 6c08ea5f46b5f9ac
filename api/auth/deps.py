"""Request -> principal: a session cookie or an API key, else 401; CSRF on cookie-authenticated writes.

API keys come as ``Authorization: Bearer khp_...`` or ``X-API-Key``. Browsers send
the session cookie; a write made with it must also carry the session's CSRF
token (``X-CSRF-Token`` header, or a ``csrf_token`` form field from the console),
so another site cannot make a logged-in browser act. Keys are not sent by
browsers on their own, so key-authenticated writes need no CSRF token.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.auth.principal import Principal, Role
from api.auth.security import Security

SESSION_COOKIE = "khupho_session"
CSRF_COOKIE = "khupho_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_security(request: Request) -> Security:
    return request.app.state.security


Sec = Annotated[Security, Depends(get_security)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401, detail="authentication required", headers={"WWW-Authenticate": "Bearer"}
    )


async def optional_principal(request: Request) -> Principal | None:
    """The caller, or ``None`` when no valid credentials came (CSRF is checked too)."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cached
    security: Security = request.app.state.security
    principal: Principal | None = None
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not key and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
    if key:
        principal = security.auth.key_principal(key)
    elif token := request.cookies.get(SESSION_COOKIE):
        principal = security.auth.session_principal(token)
        if principal is not None and request.method in UNSAFE:
            await _check_csrf(request, principal)
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # cached by Starlette; the route reads it again
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf or not secrets.compare_digest(sent, principal.csrf):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")


async def require_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise unauthorized()
    if principal.role is Role.METRICS:
        # Metrics keys read /metrics only (that route checks them itself); elsewhere they are nobody.
        raise unauthorized()
    return principal


Caller = Annotated[Principal, Depends(require_principal)]


def require_actor(principal: Caller) -> Principal:
    if not principal.can_act:
        raise HTTPException(status_code=403, detail="this account may only look")
    return principal


def require_admin(principal: Caller) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status_code=403, detail="administrators only")
    return principal


Actor = Annotated[Principal, Depends(require_actor)]
Admin = Annotated[Principal, Depends(require_admin)]


def allowed_cameras(principal: Principal, security: Security) -> frozenset[str] | None:
    return security.scope.cameras_for(principal)
