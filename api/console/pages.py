"""The console's pages and form actions. Pages without a session redirect to the login page;
forms carry the session's CSRF token (checked in ``api.auth.deps``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.auth.deps import CSRF_COOKIE, client_address, optional_principal
from api.auth.login import login, logout
from api.auth.principal import USER_ROLES, Principal, Role
from api.auth.security import Security
from api.auth.store import UserError
from api.console.i18n import LANGS, translator
from api.context import AppContext
from api.review.routes import act, detail, visible_item
from api.review.store import RESOLUTIONS, STATES
from api.routes.events import serve_snapshot, visible_event
from events.model import Event, EventType
from events.storage.store import EventFilters

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript", "resident.js": "text/javascript"}
LANG_COOKIE = "khupho_lang"
NO_PICTURE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="90" viewBox="0 0 160 90">'
    '<rect width="160" height="90" fill="#ccd2da"/><circle cx="80" cy="45" r="14" fill="none" '
    'stroke="#8a94a3" stroke-width="4"/></svg>'
)

templates = Jinja2Templates(directory=HERE / "templates")
public_router = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False)

MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


class _LoginRedirect(Exception):
    pass


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return lang if lang in LANGS else "vi"


def _security(request: Request) -> Security:
    return request.app.state.security


def _ctx(request: Request) -> AppContext:
    return request.app.state.khupho


def _tz(request: Request) -> ZoneInfo:
    return ZoneInfo(_ctx(request).traffic_tz)


def render(
    request: Request, name: str, principal: Principal | None, status: int = 200, **data: Any
) -> Response:
    lang = _lang(request)
    tz = _tz(request)

    def local(dt: datetime | None, fmt: str = "%d/%m %H:%M:%S") -> str:
        return "" if dt is None else dt.astimezone(tz).strftime(fmt)

    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": translator(lang),
            "lang": lang,
            "me": principal,
            "csrf": principal.csrf if principal else "",
            "local": local,
            "path": request.url.path,
            **data,
        },
        status_code=status,
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def _need_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(target: str | None) -> str:
    # Only our own paths: an open redirect would let a phishing link bounce through the console.
    return target if target and target.startswith("/") and not target.startswith("//") else "/console"


# public ------------------------------------------------------------------------------------------
@public_router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(
        HERE / "static" / name, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"}
    )


@public_router.get("/login")
def login_page(request: Request, principal: MaybePrincipal, next: str | None = None) -> Response:
    if principal is not None and principal.kind == "user":
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@public_router.post("/login")
def login_form(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=512)] = "/console",
) -> Response:
    security = _security(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    try:
        user, _ = login(security, request, response, username, password)
    except HTTPException as exc:
        key = "throttled" if exc.status_code == 429 else "bad_login"
        return render(request, "login.html", None, status=exc.status_code, next=_safe_next(next), error=key)
    if user.must_change:
        response.headers["Location"] = "/console/password"
    return response


# pages -------------------------------------------------------------------------------------------
@router.get("/")
def root() -> Response:
    return RedirectResponse("/console", status_code=303)


class _PasswordRedirect(Exception):
    pass


def _user_page(request: Request, principal: Principal | None) -> Principal:
    if principal is None or principal.kind != "user":
        raise _LoginRedirect
    if principal.must_change and request.url.path not in ("/console/password", "/console/logout"):
        raise _PasswordRedirect
    return principal


def _cameras(request: Request, principal: Principal) -> list[dict[str, Any]]:
    security = _security(request)
    allowed = security.scope.cameras_for(principal)
    out = []
    for raw in _ctx(request).cameras():
        cam = (
            dict(raw)
            if isinstance(raw, dict)
            else {k: getattr(raw, k, None) for k in ("id", "name", "state")}
        )
        if allowed is None or cam["id"] in allowed:
            cam["khu_pho"], cam["ward"] = security.scope.place_names(cam["id"])
            out.append(cam)
    return out


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params

    def parse_time(name: str) -> datetime | None:
        try:
            value = datetime.fromisoformat(q[name]) if q.get(name) else None
        except ValueError:
            return None
        return value.replace(tzinfo=_tz(request)) if value and value.tzinfo is None else value

    return {
        "camera": [c for c in q.getlist("camera") if c] or None,
        "khu_pho": q.get("khu_pho") or None,
        "state": [s for s in q.getlist("state") if s in STATES] or None,
        "type": [t for t in q.getlist("type") if t in set(EventType)] or None,
        "severity": q.get("severity") if q.get("severity") in ("alert", "detection") else None,
        "since": parse_time("since"),
        "until": parse_time("until"),
    }


def _items(
    request: Request, principal: Principal, cursor: str | None
) -> tuple[list[Any], str | None, set[str]]:
    security = _security(request)
    f = _filters(request)
    allowed = security.scope.cameras_for(principal)
    if f["khu_pho"]:
        in_place = {c for c, kp in security.scope.camera_khu_pho.items() if kp == f["khu_pho"]}
        allowed = frozenset(in_place if allowed is None else in_place & allowed)
    try:
        items, nxt = security.review.list(
            allowed,
            camera=f["camera"],
            state=f["state"],
            type=f["type"],
            severity=f["severity"],
            since=f["since"],
            until=f["until"],
            limit=30,
            cursor=cursor,
        )
    except ValueError:
        items, nxt = [], None
    return items, nxt, security.review.seen_items(principal.name, [i.id for i in items])


@router.get("/console")
def feed(
    request: Request, principal: MaybePrincipal, cursor: Annotated[str | None, Query(max_length=512)] = None
) -> Response:
    me = _user_page(request, principal)
    items, nxt, seen = _items(request, me, cursor)
    security = _security(request)
    places = {
        kp: conf.name
        for kp, conf in security.scope.khu_pho.items()
        if security.scope.cameras_for(me) is None
        or any(security.scope.camera_khu_pho.get(c) == kp for c in security.scope.cameras_for(me) or ())
    }
    query = {k: v for k, v in request.query_params.multi_items() if k != "cursor"}
    return render(
        request,
        "feed.html",
        me,
        items=items,
        seen=seen,
        next_url=f"/console?{urlencode([*query.items(), ('cursor', nxt)])}" if nxt else None,
        cameras=_cameras(request, me),
        places=places,
        filters=_filters(request),
        states=STATES,
        types=list(EventType),
        list_query=urlencode(list(request.query_params.multi_items())),
    )


@router.get("/console/feed")
def feed_list(request: Request, principal: MaybePrincipal) -> Response:
    """The feed's list alone, fetched by the page's script when the live stream reports a change."""
    me = _user_page(request, principal)
    items, _, seen = _items(request, me, None)
    return render(request, "_items.html", me, items=items, seen=seen, cameras=_cameras(request, me))


def _events_of(request: Request, item_id: str, limit: int = 50) -> list[Event]:
    store = _ctx(request).store
    events = [store.get(eid) for eid in _security(request).review.event_ids(item_id, limit)]
    return sorted((e for e in events if e is not None), key=lambda e: e.start_time)


@router.get("/console/items/{item_id}")
def item_page(request: Request, item_id: str, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    security = _security(request)
    try:
        item = visible_item(security, me, item_id)
    except HTTPException:
        return render(request, "error.html", me, status=404, message="not_found")
    security.review.mark_seen(item_id, me.name)
    events = _events_of(request, item_id)
    return render(
        request,
        "item.html",
        me,
        item=detail(security, me, item),
        events=events,
        snapshots=[e for e in events if e.snapshot][-12:],
        users=[u for u in security.auth.users() if not u.disabled and u.role is not Role.VIEWER],
        resolutions=RESOLUTIONS,
        camera_name=next(
            (c.get("name") for c in _cameras(request, me) if c["id"] == item.camera), item.camera
        ),
    )


@router.post("/console/items/{item_id}/{action}")
async def item_action(request: Request, item_id: str, action: str, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    if action not in ("acknowledge", "assign", "resolve", "reopen", "comment"):
        raise HTTPException(status_code=404, detail="not found")
    if not me.can_act:
        return render(request, "error.html", me, status=403, message="view_only")
    form = await request.form()
    fields = {"assign": ("username",), "resolve": ("resolution", "note"), "comment": ("text",)}.get(
        action, ()
    )
    args = {name: str(form.get(name, ""))[:2000] for name in fields}
    if action == "resolve" and args["resolution"] not in RESOLUTIONS:
        return render(request, "error.html", me, status=422, message="resolution")
    try:
        act(_security(request), me, request, item_id, action, **args)
    except HTTPException as exc:
        return render(request, "error.html", me, status=exc.status_code, message=str(exc.detail))
    return RedirectResponse(f"/console/items/{item_id}", status_code=303)


@router.get("/console/items/{item_id}/thumb.jpg")
def item_thumbnail(request: Request, item_id: str, principal: MaybePrincipal) -> Response:
    """The newest snapshot of the item's events (faces blurred; the view is audited)."""
    me = _user_page(request, principal)
    security = _security(request)
    visible_item(security, me, item_id)
    store = _ctx(request).store
    for event_id in security.review.event_ids(item_id, 20):
        event = store.get(event_id)
        if event is not None and event.snapshot:
            security.audit.record(
                me.name, "snapshot.view", event_id, address=client_address(request), camera=event.camera
            )
            return serve_snapshot(_ctx(request), event, event.snapshot)
    # No picture (yet, or never: camera health, line crossings): a placeholder, not a broken image.
    return Response(NO_PICTURE, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


@router.get("/console/events/{event_id}/original")
def original_page(
    request: Request,
    event_id: str,
    principal: MaybePrincipal,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """Asks for a reason, then shows the unredacted snapshot (its fetch is what gets audited)."""
    me = _user_page(request, principal)
    event = visible_event(_ctx(request), _security(request), me, event_id)
    if not me.may_unredact:
        return render(request, "error.html", me, status=403, message="view_only")
    reason = reason.strip()
    item_id = _security(request).review.item_of_event(event_id)
    image = (
        f"/events/{event_id}/snapshot/unredacted?{urlencode({'reason': reason})}"
        if len(reason) >= 5
        else None
    )
    return render(request, "original.html", me, event=event, reason=reason, image=image, item_id=item_id)


@router.get("/console/cameras")
def camera_wall(request: Request, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    cams = _cameras(request, me)
    store = _ctx(request).store
    for cam in cams:
        events, _ = store.list_events(EventFilters(camera=cam["id"]), limit=20)
        latest = next((e for e in events if e.snapshot), None)
        cam["latest_event"] = latest.id if latest else None
        lf = cam.get("last_frame_time")
        cam["last_frame"] = lf if isinstance(lf, datetime) else None
    return render(request, "cameras.html", me, cameras=cams)


@router.get("/console/audit")
def audit_page(
    request: Request, principal: MaybePrincipal, before: Annotated[int | None, Query(ge=1, le=2**62)] = None
) -> Response:
    me = _user_page(request, principal)
    if not me.is_admin:
        return render(request, "error.html", me, status=403, message="view_only")
    security = _security(request)
    rows = security.audit.records(before=before, limit=100)
    return render(
        request,
        "audit.html",
        me,
        rows=rows,
        verify=security.audit.verify(),
        older=f"/console/audit?before={rows[-1].seq}" if len(rows) == 100 else None,
    )


@router.get("/console/users")
def users_page(request: Request, principal: MaybePrincipal, error: str | None = None) -> Response:
    me = _user_page(request, principal)
    if not me.is_admin:
        return render(request, "error.html", me, status=403, message="view_only")
    security = _security(request)
    return render(
        request,
        "users.html",
        me,
        users=security.auth.users(),
        roles=USER_ROLES,
        wards=security.scope.wards,
        places=security.scope.khu_pho,
        error=error,
    )


@router.post("/console/users")
async def users_add(request: Request, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    if not me.is_admin:
        return render(request, "error.html", me, status=403, message="view_only")
    security = _security(request)
    form = await request.form()
    try:
        role = Role(str(form.get("role", "")))
        if role not in USER_ROLES:
            raise ValueError("role")
        scopes = [str(s) for s in form.getlist("scopes") if s]
        security.scope.check_scopes(role, scopes)
        user = security.auth.add_user(
            str(form.get("username", "")).strip(),
            str(form.get("password", "")),
            role,
            scopes,
            unredacted=form.get("unredacted") == "on",
            must_change=True,
        )
    except (ValueError, UserError) as exc:
        return RedirectResponse(f"/console/users?{urlencode({'error': str(exc)[:200]})}", status_code=303)
    security.audit.record(
        me.name, "user.add", user.username, address=client_address(request), role=str(role), scopes=scopes
    )
    return RedirectResponse("/console/users", status_code=303)


@router.post("/console/users/{username}/toggle")
def users_toggle(request: Request, username: str, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    if not me.is_admin:
        return render(request, "error.html", me, status=403, message="view_only")
    security = _security(request)
    user = security.auth.user(username)
    if user is None or user.username == me.name:
        raise HTTPException(status_code=404, detail="not found")
    security.auth.update_user(username, disabled=not user.disabled)
    security.audit.record(
        me.name, "user.change", username, address=client_address(request), disabled=not user.disabled
    )
    return RedirectResponse("/console/users", status_code=303)


@router.get("/console/password")
def password_page(request: Request, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    return render(request, "password.html", me, error=None)


@router.post("/console/password")
def password_change(
    request: Request,
    principal: MaybePrincipal,
    current_password: Annotated[str, Form(max_length=256)],
    new_password: Annotated[str, Form(max_length=256)],
) -> Response:
    me = _user_page(request, principal)
    security = _security(request)
    if security.auth.check_password(me.name, current_password) is None:
        return render(request, "password.html", me, status=401, error="bad_login")
    try:
        security.auth.set_password(me.name, new_password)
    except UserError as exc:
        return render(request, "password.html", me, status=400, error=str(exc))
    security.audit.record(me.name, "user.password", me.name, address=client_address(request))
    response = RedirectResponse("/login", status_code=303)  # every session ended: log in again
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/console/logout")
def logout_form(request: Request, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    response = RedirectResponse("/login", status_code=303)
    logout(_security(request), request, response, me.session_id, me.name)
    return response


def install_login_redirect(app: Any) -> None:
    @app.exception_handler(_LoginRedirect)
    async def _redirect(request: Request, exc: _LoginRedirect) -> Response:
        return _need_login(request)

    @app.exception_handler(_PasswordRedirect)
    async def _change_password(request: Request, exc: _PasswordRedirect) -> Response:
        return RedirectResponse("/console/password", status_code=303)


__all__ = ["UTC", "install_login_redirect", "public_router", "router"]
