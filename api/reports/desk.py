"""``ReportDesk``: every change to a report goes through here, is checked, and is audited.

Public side (residents, Open311): :meth:`submit`, :meth:`track`, :meth:`reopen`, each behind the
rate limits. Staff side: :meth:`visible` (another khu phố's report is ``None``: a 404, never a 403),
:meth:`act` for triage and answers, :meth:`link_evidence` / :meth:`unlink_evidence` for camera
events, and :meth:`release_evidence` which unlocks evidence of reports closed for
``evidence_keep_days`` (called periodically by the service).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.audit import AuditLog
from api.auth.principal import Principal, Role
from api.auth.scope import ScopeIndex
from api.auth.store import AuthStore
from api.reports.config import ReportsConfig
from api.reports.errors import ReportRefused
from api.reports.limits import RateLimiter
from api.reports.photo import PeopleFinder, PhotoRejected, make_safe
from api.reports.routing import Router
from api.reports.services import SERVICES
from api.reports.store import CLOSED_STATES, OPEN_STATES, Report, ReportStore, to_epoch_us
from api.reports.text import (
    clean_email,
    clean_phone,
    clean_text,
    contact_key,
    new_tracking_code,
    normalise_code,
)
from events.storage.objects import ObjectStore
from events.storage.snapshot import Redactor
from events.storage.spool import UploadSpool
from events.storage.store import EventStore, StorageError

log = logging.getLogger(__name__)

RESIDENT = "resident"
STAFF_ACTIONS = (
    "route", "category", "assign", "start", "resolve", "reject", "merge", "note", "hide", "unhide", "reopen"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Submission:
    """What a resident sends (already split from the form; checked by :meth:`ReportDesk.submit`)."""

    service_code: str
    description: str
    lat: str | None = None
    long: str | None = None
    address_string: str | None = None
    khu_pho: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    attributes: dict[str, str] | None = None
    photo: bytes | None = None


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _coordinate(value: str | None, name: str, bound: float) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise ReportRefused("bad_location", f"{name} must be a number", 400) from None
    if not -bound <= number <= bound:  # also refuses nan and inf
        raise ReportRefused("bad_location", f"{name} must be between -{bound:g} and {bound:g}", 400)
    return number


class ReportDesk:
    def __init__(
        self,
        store: ReportStore,
        *,
        audit: AuditLog,
        users: AuthStore,
        scope: ScopeIndex,
        events: EventStore,
        objects: ObjectStore,
        uploads: UploadSpool | None = None,
        redactor: Redactor | None = None,
        find_people: PeopleFinder | None = None,
        config: ReportsConfig | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.users = users
        self.scope = scope
        self.events = events
        self.objects = objects
        self.uploads = uploads
        self.redactor = redactor
        self.find_people = find_people
        self.config = config = config or ReportsConfig()
        self.router = Router(scope.khu_pho, scope.wards, config.default_ward)
        self.per_address = RateLimiter(config.requests_per_minute, 60.0)
        self.submits = RateLimiter(config.submits_per_hour, 3600.0)
        self.token_uses = RateLimiter(config.token_uses_per_hour, 3600.0)

    # places ----------------------------------------------------------------------------------------
    def agency(self, report: Report) -> str:
        """The body answering the report: its khu phố, else its ward (the ward queue)."""
        if report.khu_pho and report.khu_pho in self.scope.khu_pho:
            return self.scope.khu_pho[report.khu_pho].name
        if report.ward and report.ward in self.scope.wards:
            return self.scope.wards[report.ward].name
        return ""

    def places_for(self, principal: Principal) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """(khu phố ids, ward ids whose queue it sees); (None, None) for everywhere."""
        if principal.role is Role.ADMIN:
            return None, None
        if principal.role is Role.SUPERVISOR:
            wards = frozenset(principal.scopes)
            return frozenset(k for k, c in self.scope.khu_pho.items() if c.ward in wards), wards
        if principal.role in (Role.OPERATOR, Role.VIEWER):
            return frozenset(principal.scopes), frozenset()
        return frozenset(), frozenset()

    def _sees(self, principal: Principal, report: Report) -> bool:
        kp, wards = self.places_for(principal)
        if kp is None:
            return True
        if report.khu_pho is not None:
            return report.khu_pho in kp
        return wards is not None and report.ward in wards

    # public side -----------------------------------------------------------------------------------
    def check_address(self, address: str) -> None:
        """Every public report route: at most ``requests_per_minute`` per client address."""
        wait = self.per_address.hit(address)
        if wait:
            raise ReportRefused(
                "rate_limited", "too many requests from this address; wait a minute", 429, wait
            )

    def submit(self, form: Submission, *, address: str) -> tuple[Report, str]:
        """Check everything, make the photo safe, then store: (report, tracking code shown once)."""
        cfg = self.config
        service = SERVICES.get((form.service_code or "").strip())
        if service is None:
            raise ReportRefused("unknown_service", f"service_code must be one of {', '.join(SERVICES)}", 400)
        description = clean_text(form.description, "description", cfg.max_description, required=True)
        lat = _coordinate(form.lat, "lat", 90)
        lon = _coordinate(form.long, "long", 180)
        if (lat is None) != (lon is None):
            raise ReportRefused("bad_location", "send both lat and long, or neither", 400)
        address_text = clean_text(form.address_string, "address_string", 250)
        if lat is None and address_text is None:
            raise ReportRefused(
                "missing_location", "a location is required: lat and long, or address_string", 400
            )
        chosen = (form.khu_pho or "").strip() or None
        if chosen is not None and chosen not in self.scope.khu_pho:
            raise ReportRefused("unknown_khu_pho", "khu_pho is not a khu phố of this ward", 400)
        email, phone = clean_email(form.email), clean_phone(form.phone)
        names = [
            clean_text(n, f, 100) for n, f in ((form.first_name, "first_name"), (form.last_name, "last_name"))
        ]
        attributes: dict[str, str] = {}
        for attr in service.attributes:
            value = (form.attributes or {}).get(attr.code)
            if value is None or value == "":
                if attr.required:
                    raise ReportRefused("missing_field", f"attribute[{attr.code}] is required", 400)
                continue
            if attr.values and value not in {v[0] for v in attr.values}:
                raise ReportRefused("bad_attribute", f"attribute[{attr.code}] is not one of its values", 400)
            attributes[attr.code] = clean_text(value, f"attribute[{attr.code}]", 200) or ""
        key = contact_key(email, phone)
        if key is not None and self.store.open_for_contact(key) >= cfg.max_open_per_contact:
            raise ReportRefused(
                "too_many_open",
                f"this contact already has {cfg.max_open_per_contact} open reports; wait for an answer",
                429,
            )
        photo = None
        if form.photo:
            try:
                photo = make_safe(
                    form.photo,
                    max_bytes=int(cfg.max_photo_mb * 1_000_000),
                    max_pixels=cfg.max_photo_pixels,
                    max_side=cfg.photo_max_side,
                    redactor=self.redactor,
                    find_people=self.find_people,
                )
            except PhotoRejected as exc:
                status = 413 if exc.kind == "too_large" else 400
                raise ReportRefused(f"photo_{exc.kind}", str(exc), status) from None
        # Counted last: a refused form costs the resident nothing but its mistakes.
        wait = self.submits.hit(address)
        if wait:
            raise ReportRefused(
                "rate_limited", "too many reports from this address; try again later", 429, wait
            )
        place = self.router.place(chosen=chosen, lat=lat, lon=lon)
        code = new_tracking_code()
        name = " ".join(n for n in names if n) or None
        report = self.store.create(
            token_hash=_hash(code),
            service_code=service.code,
            description=description or "",
            lat=lat,
            lon=lon,
            address=address_text,
            khu_pho=place.khu_pho,
            ward=place.ward,
            contact={"name": name, "email": email, "phone": phone},
            contact_key=key,
            attributes=attributes,
            routed_note=self.scope.khu_pho[place.khu_pho].name if place.khu_pho else None,
        )
        if photo is not None:
            report = self._store_photo(report, photo)
        self.audit.record(
            RESIDENT,
            "report.submit",
            str(report.id),
            address=address,
            service_code=service.code,
            khu_pho=place.khu_pho,
            ward=place.ward,
            photo=photo is not None,
        )
        return report, code

    def _store_photo(self, report: Report, jpeg: bytes) -> Report:
        name = secrets.token_hex(12)
        d = report.created
        key = f"reports/{d:%Y}/{d:%m}/{report.id}-{name}.jpg"
        meta = {"report-id": str(report.id)}
        try:
            if self.uploads is not None:
                # Kept on local disk and retried if the object store is down; the media link then
                # answers 404 until it arrives.
                self.uploads.put(
                    key=key,
                    data=jpeg,
                    content_type="image/jpeg",
                    metadata=meta,
                    link={"kind": "report_photo", "report_id": report.id},
                )
            else:
                self.objects.put(key, jpeg, "image/jpeg", meta)
        except StorageError as exc:
            log.warning("photo of report %s not stored: %s", report.id, exc)
            return report
        self.store.set_media(report.id, key, name)
        stored = self.store.get(report.id)
        assert stored is not None
        return stored

    def track(self, code: str, *, address: str) -> Report:
        """The report of a tracking code (counted against the code's and the address's limits)."""
        canonical = normalise_code(code or "")
        if canonical is None:
            raise ReportRefused("bad_code", "a tracking code has 20 letters and digits", 400)
        wait = self.token_uses.hit(canonical)
        if wait:
            raise ReportRefused("rate_limited", "this code was used too often; try again later", 429, wait)
        report = self.store.by_token(_hash(canonical))
        if report is None or report.hidden:
            raise ReportRefused("unknown_code", "no report has this tracking code", 404)
        return report

    def reopen(self, code: str, note: str | None, *, address: str) -> Report:
        """The resident says the problem is back: a resolved report reopens within ``reopen_days``."""
        report = self.track(code, address=address)
        text = clean_text(note, "note", 1000)
        if report.state != "resolved" or report.closed is None:
            raise ReportRefused("not_reopenable", "only a resolved report can be reopened", 409)
        if datetime.now(UTC) - report.closed > timedelta(days=self.config.reopen_days):
            raise ReportRefused(
                "too_late",
                f"a report can be reopened within {self.config.reopen_days:g} days of its answer",
                409,
            )
        report = self.store.change(
            report.id, kind="reopened", actor=RESIDENT, public=True, state="reopened", public_note=text
        )
        self.audit.record(RESIDENT, "report.reopen", str(report.id), address=address)
        return report

    # staff side ------------------------------------------------------------------------------------
    def visible(self, principal: Principal, report_id: int | str) -> Report | None:
        if not isinstance(report_id, int) and not re.fullmatch(r"[0-9]{1,17}", str(report_id)):
            return None
        rid = int(report_id)
        if not 0 < rid < 2**62:
            return None
        report = self.store.get(rid)
        return report if report is not None and self._sees(principal, report) else None

    def queue(self, principal: Principal, **filters: Any) -> list[Report]:
        kp, wards = self.places_for(principal)
        return self.store.search(khu_pho=kp, wards=wards, include_hidden=True, **filters)

    def act(
        self, principal: Principal, report_id: int | str, action: str, *, address: str, **args: str
    ) -> Report:
        """One staff action; refusals: 404 outside scope, 403 viewers, 409 by state, 400 bad input."""
        report = self.visible(principal, report_id)
        if report is None:
            raise ReportRefused("not_found", "unknown report", 404)
        if not principal.can_act:
            raise ReportRefused("view_only", "this account may only look", 403)
        if action not in STAFF_ACTIONS:
            raise ReportRefused("unknown_action", f"action must be one of {', '.join(STAFF_ACTIONS)}", 400)
        public_note = clean_text(args.get("public_note"), "public_note", 2000)
        internal_note = clean_text(args.get("internal_note"), "internal_note", 2000)
        change: dict[str, Any] = {"actor": principal.name, "internal_note": internal_note}
        is_open = report.state in OPEN_STATES
        if action in ("route", "category", "assign", "start", "resolve", "reject", "merge") and not is_open:
            raise ReportRefused("closed", "the report is closed; reopen it first", 409)
        if action == "route":
            target = (args.get("khu_pho") or "").strip()
            if target not in self.scope.khu_pho:
                raise ReportRefused("unknown_khu_pho", "unknown khu phố", 400)
            if not self._may_route(principal, report, target):
                raise ReportRefused("not_allowed", "this khu phố is outside your ward", 403)
            name = self.scope.khu_pho[target].name
            state = "assigned" if report.state in ("received", "reopened") else report.state
            # The timeline names the khu phố now answering ("Đã chuyển đến: Khu phố 1").
            note = f"{name}: {public_note}" if public_note else name
            ward = self.scope.khu_pho[target].ward
            change |= {"kind": "routed", "public": True, "state": state, "public_note": note,
                       "khu_pho": target, "ward": ward, "assignee": None}  # fmt: skip
            detail: dict[str, Any] = {"khu_pho": target, "name": name}
        elif action == "category":
            code = (args.get("service_code") or "").strip()
            if code not in SERVICES:
                raise ReportRefused("unknown_service", "unknown service_code", 400)
            change |= {"kind": "category", "public": True, "public_note": public_note, "service_code": code}
            detail = {"from": report.service_code, "to": code}
        elif action == "assign":
            username = (args.get("username") or "").strip()
            user = self.users.user(username)
            if user is None or user.disabled or not self.user_may_handle(user.role, user.scopes, report):
                raise ReportRefused(
                    "unknown_user", "no active staff account of this khu phố has that name", 400
                )
            state = "assigned" if report.state in ("received", "reopened") else report.state
            # Residents see that it is being handled, never by whom.
            change |= {"kind": "assigned", "public": state != report.state, "state": state,
                       "assignee": user.username}  # fmt: skip
            detail = {"assignee": user.username}
        elif action == "start":
            change |= {
                "kind": "in_progress",
                "public": True,
                "state": "in_progress",
                "public_note": public_note,
            }
            detail = {}
        elif action in ("resolve", "reject"):
            if not public_note:
                raise ReportRefused("missing_field", "public_note is required: tell the resident why", 400)
            state = "resolved" if action == "resolve" else "rejected"
            change |= {"kind": state, "public": True, "state": state, "public_note": public_note}
            detail = {}
        elif action == "merge":
            target_report = self.visible(principal, args.get("into") or "")
            if target_report is None or target_report.id == report.id:
                raise ReportRefused("unknown_report", "the report to merge into is unknown", 400)
            note = public_note or f"#{target_report.id}"
            change |= {"kind": "merged", "public": True, "state": "rejected", "public_note": note,
                       "merged_into": target_report.id}  # fmt: skip
            detail = {"into": target_report.id}
        elif action == "note":
            if not public_note and not internal_note:
                raise ReportRefused("missing_field", "write a public or an internal note", 400)
            change |= {"kind": "note", "public": bool(public_note), "public_note": public_note}
            detail = {}
        elif action in ("hide", "unhide"):
            # Spam leaves public view; the report, its timeline and the audit trail stay.
            change |= {"kind": action, "public": False, "hidden": action == "hide"}
            detail = {}
        else:  # reopen
            if is_open:
                raise ReportRefused("open", "the report is open", 409)
            change |= {"kind": "reopened", "public": True, "state": "reopened", "public_note": public_note}
            detail = {}
        updated = self.store.change(report.id, **change)
        self.audit.record(
            principal.name,
            f"report.{action}",
            str(report.id),
            address=address,
            **detail,
            **({"public_note": public_note} if public_note else {}),
            **({"internal_note": internal_note} if internal_note else {}),
        )
        return updated

    def _may_route(self, principal: Principal, report: Report, target: str) -> bool:
        kp, _ = self.places_for(principal)
        if kp is None or target in kp:
            return True
        # An operator may hand a misrouted report over to a neighbour of the same ward.
        return report.ward is not None and self.scope.khu_pho[target].ward == report.ward

    def user_may_handle(self, role: Role, scopes: list[str], report: Report) -> bool:
        """Whether an account with this role and scopes may be assigned the report."""
        probe = Principal(kind="user", id="0", name="", role=role, scopes=tuple(scopes))
        return role is not Role.VIEWER and self._sees(probe, report)

    # evidence --------------------------------------------------------------------------------------
    def link_evidence(
        self, principal: Principal, report_id: int | str, event_id: str, *, address: str
    ) -> Report:
        """Link a camera event the caller may see; it is locked (kept by retention) from now on."""
        report = self.visible(principal, report_id)
        if report is None:
            raise ReportRefused("not_found", "unknown report", 404)
        if not principal.can_act:
            raise ReportRefused("view_only", "this account may only look", 403)
        event_id = (event_id or "").strip()[:128]
        event = self.events.get(event_id) if event_id else None
        if event is None or not self.scope.may_see(principal, event.camera):
            raise ReportRefused("unknown_event", "unknown camera event", 400)
        if self.store.add_evidence(report.id, event.id, principal.name, was_locked=event.locked):
            self.events.set_locked(event.id, True)
            self.store.change(report.id, kind="evidence", actor=principal.name, public=False,
                              internal_note=f"+ {event.id}")  # fmt: skip
            self.audit.record(
                principal.name, "report.evidence_link", str(report.id), address=address,
                event_id=event.id, camera=event.camera,
            )  # fmt: skip
        return report

    def unlink_evidence(
        self, principal: Principal, report_id: int | str, event_id: str, *, address: str
    ) -> Report:
        report = self.visible(principal, report_id)
        if report is None:
            raise ReportRefused("not_found", "unknown report", 404)
        if not principal.can_act:
            raise ReportRefused("view_only", "this account may only look", 403)
        link = self.store.remove_evidence(report.id, event_id)
        if link is None:
            raise ReportRefused("unknown_event", "that event is not linked to this report", 400)
        far_future = to_epoch_us(datetime.now(UTC)) + 1
        if not link.was_locked and not self.store.evidence_still_needed(event_id, far_future):
            self.events.set_locked(event_id, False)
        self.store.change(report.id, kind="evidence", actor=principal.name, public=False,
                          internal_note=f"- {event_id}")  # fmt: skip
        self.audit.record(
            principal.name, "report.evidence_unlink", str(report.id), address=address, event_id=event_id
        )
        return report

    def release_evidence(self, now: datetime | None = None) -> int:
        """Unlock evidence of reports closed ``evidence_keep_days`` ago (unless another report still
        needs it, or it was locked before any report linked it). Returns how many events were unlocked."""
        now = now or datetime.now(UTC)
        cutoff = to_epoch_us(now - timedelta(days=self.config.evidence_keep_days))
        unlocked = 0
        for report_id, link in self.store.evidence_due(cutoff):
            self.store.mark_released(report_id, link.event_id)
            if link.was_locked or self.store.was_locked_before(link.event_id):
                continue
            if self.store.evidence_still_needed(link.event_id, cutoff):
                continue
            if self.events.set_locked(link.event_id, False):
                unlocked += 1
            self.audit.record("system", "report.evidence_release", str(report_id), event_id=link.event_id)
        return unlocked


__all__ = ["CLOSED_STATES", "OPEN_STATES", "ReportDesk", "Submission"]
