"""``/auth/*`` (login, logout, me, password), ``/users`` and ``/api-keys`` (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth.deps import Admin, Caller, Sec, client_address
from api.auth.login import login, logout
from api.auth.principal import USER_ROLES, Role
from api.auth.store import UserError, UserInfo

public_router = APIRouter(tags=["auth"])
router = APIRouter(tags=["auth"])

Username = Annotated[str, Field(min_length=1, max_length=64)]
Password = Annotated[str, Field(min_length=1, max_length=256)]


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    password: Password


class Me(BaseModel):
    username: str
    role: Role
    scopes: list[str]
    unredacted: bool
    csrf_token: str | None = None
    must_change_password: bool = False


class UserOut(BaseModel):
    username: str
    role: Role
    scopes: list[str]
    unredacted: bool
    disabled: bool


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    password: Password
    role: Role
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=100)
    unredacted: bool = False


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    scopes: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=100)
    unredacted: bool | None = None
    disabled: bool | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Password
    new_password: Password


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: Role
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=100)


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    scopes: list[str]
    revoked: bool


class NewKeyOut(KeyOut):
    key: str  # shown once; only its hash is kept


def _user_out(u: UserInfo) -> UserOut:
    return UserOut(
        username=u.username, role=u.role, scopes=u.scopes, unredacted=u.unredacted, disabled=u.disabled
    )


@public_router.post("/auth/login", response_model=Me, responses={401: {}, 429: {}})
def post_login(body: LoginBody, request: Request, response: Response, security: Sec) -> Me:
    """Log in: sets an HttpOnly session cookie; send ``csrf_token`` back as ``X-CSRF-Token`` on writes."""
    user, csrf = login(security, request, response, body.username, body.password)
    return Me(
        username=user.username,
        role=user.role,
        scopes=user.scopes,
        unredacted=user.unredacted,
        csrf_token=csrf,
        must_change_password=user.must_change,
    )


@router.post("/auth/logout", status_code=204, response_class=Response)
def post_logout(request: Request, principal: Caller, security: Sec) -> Response:
    response = Response(status_code=204)
    logout(security, request, response, principal.session_id, principal.name)
    return response


@router.get("/auth/me", response_model=Me)
def get_me(principal: Caller) -> Me:
    return Me(
        username=principal.name,
        role=principal.role,
        scopes=list(principal.scopes),
        unredacted=principal.may_unredact,
        csrf_token=principal.csrf,
    )


@router.post("/auth/password", status_code=204, response_class=Response, responses={400: {}, 401: {}})
def change_password(body: PasswordChange, request: Request, principal: Caller, security: Sec) -> Response:
    """Change one's own password; every session of the account ends (log in again)."""
    if (
        principal.kind != "user"
        or security.auth.check_password(principal.name, body.current_password) is None
    ):
        raise HTTPException(status_code=401, detail="wrong current password")
    try:
        security.auth.set_password(principal.name, body.new_password)
    except UserError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    security.audit.record(principal.name, "user.password", principal.name, address=client_address(request))
    return Response(status_code=204)


@router.get("/users", response_model=list[UserOut])
def list_users(admin: Admin, security: Sec) -> list[UserOut]:
    return [_user_out(u) for u in security.auth.users()]


@router.post("/users", response_model=UserOut, status_code=201, responses={400: {}})
def add_user(body: NewUser, request: Request, admin: Admin, security: Sec) -> UserOut:
    if body.role not in USER_ROLES:
        raise HTTPException(status_code=400, detail=f"a user's role is one of {', '.join(USER_ROLES)}")
    try:
        security.scope.check_scopes(body.role, body.scopes)
        user = security.auth.add_user(
            body.username, body.password, body.role, body.scopes, unredacted=body.unredacted
        )
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    security.audit.record(
        admin.name,
        "user.add",
        user.username,
        address=client_address(request),
        role=str(user.role),
        scopes=user.scopes,
    )
    return _user_out(user)


@router.patch("/users/{username}", response_model=UserOut, responses={400: {}, 404: {}})
def change_user(username: str, body: UserChange, request: Request, admin: Admin, security: Sec) -> UserOut:
    """Change role, scopes, the unredacted permission or disable; the user's sessions end."""
    current = security.auth.user(username)
    if current is None:
        raise HTTPException(status_code=404, detail="unknown user")
    if current.username.lower() == admin.name.lower():
        # Demoting or disabling oneself could leave nobody able to manage the service.
        raise HTTPException(status_code=400, detail="administrators cannot change their own account here")
    role = body.role or current.role
    if role not in USER_ROLES:
        raise HTTPException(status_code=400, detail=f"a user's role is one of {', '.join(USER_ROLES)}")
    try:
        security.scope.check_scopes(role, body.scopes if body.scopes is not None else current.scopes)
        user = security.auth.update_user(
            username, role=body.role, scopes=body.scopes, unredacted=body.unredacted, disabled=body.disabled
        )
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    security.audit.record(
        admin.name,
        "user.change",
        username,
        address=client_address(request),
        **body.model_dump(exclude_none=True),
    )
    return _user_out(user)


@router.post(
    "/users/{username}/password", status_code=204, response_class=Response, responses={400: {}, 404: {}}
)
def reset_password(
    username: str,
    request: Request,
    admin: Admin,
    security: Sec,
    password: Annotated[str, Body(embed=True, max_length=256)],
) -> Response:
    """Set a user's password (they must change it at next login); their sessions end."""
    if security.auth.user(username) is None:
        raise HTTPException(status_code=404, detail="unknown user")
    try:
        security.auth.set_password(username, password, must_change=True)
    except UserError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    security.audit.record(admin.name, "user.password_reset", username, address=client_address(request))
    return Response(status_code=204)


@router.get("/api-keys", response_model=list[KeyOut])
def list_keys(admin: Admin, security: Sec) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in security.auth.api_keys()]


@router.post("/api-keys", response_model=NewKeyOut, status_code=201, responses={400: {}})
def add_key(body: NewKey, request: Request, admin: Admin, security: Sec) -> NewKeyOut:
    """A key for a machine (signage, an integration, Prometheus with role ``metrics``); shown once."""
    if body.role is Role.ADMIN:
        raise HTTPException(status_code=400, detail="API keys cannot be administrators")
    try:
        security.scope.check_scopes(body.role, body.scopes)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    key_id, key = security.auth.add_key(body.name, body.role, body.scopes)
    security.audit.record(
        admin.name, "api_key.add", key_id, address=client_address(request), role=str(body.role)
    )
    return NewKeyOut(id=key_id, name=body.name, role=body.role, scopes=body.scopes, revoked=False, key=key)


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response, responses={404: {}})
def revoke_key(key_id: str, request: Request, admin: Admin, security: Sec) -> Response:
    if not security.auth.revoke_key(key_id):
        raise HTTPException(status_code=404, detail="unknown key")
    security.audit.record(admin.name, "api_key.revoke", key_id, address=client_address(request))
    return Response(status_code=204)
