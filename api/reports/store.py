"""Reports, their timelines and their evidence links, in the service's database (beside the
accounts, audit and review tables of ``api.auth.db.SecurityDb``).

A report's life (``state``)::

    received ──route──▶ assigned ──start──▶ in_progress ──resolve──▶ resolved ──reopen (14 days)──▶ reopened
        └────────── resolve / reject (with a public reason) from any open state ──────────┘

Every change adds one row to ``report_updates`` in the same transaction: the kind of
change, the state after it, an optional public note (shown to residents and in
Open311) and an optional internal note (staff only), and who did it (staff only).
Rows marked ``public`` make the resident's timeline; the rest stay internal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from api.auth.db import SecurityDb
from events.storage.store import from_epoch_us, to_epoch_us

State = Literal["received", "assigned", "in_progress", "resolved", "rejected", "reopened"]
STATES: tuple[State, ...] = ("received", "assigned", "in_progress", "resolved", "rejected", "reopened")
OPEN_STATES: tuple[State, ...] = ("received", "assigned", "in_progress", "reopened")
CLOSED_STATES: tuple[State, ...] = ("resolved", "rejected")


def now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    service_code: str
    description: str
    lat: float | None
    lon: float | None
    address: str | None
    khu_pho: str | None
    ward: str | None
    state: State
    status_notes: str | None
    assignee: str | None
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    attributes: dict[str, str]
    media_key: str | None
    media_name: str | None
    hidden: bool
    merged_into: int | None
    created: datetime
    updated: datetime
    closed: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True, slots=True)
class Update:
    id: int
    report_id: int
    time: datetime
    kind: str
    state: State
    public: bool
    public_note: str | None
    internal_note: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class Evidence:
    event_id: str
    time: datetime
    linked_by: str
    was_locked: bool
    released: bool


class ReportStore:
    def __init__(self, db: SecurityDb) -> None:
        self.db = db

    def create(
        self,
        *,
        token_hash: str,
        service_code: str,
        description: str,
        lat: float | None,
        lon: float | None,
        address: str | None,
        khu_pho: str | None,
        ward: str | None,
        contact: dict[str, str | None],
        contact_key: str | None,
        attributes: dict[str, str],
        routed_note: str | None,
    ) -> Report:
        """A new report, ``received`` (and ``assigned`` at once when it landed in a khu phố)."""
        ts = now_us()
        state: State = "assigned" if khu_pho else "received"
        with self.db.tx() as c:
            cur = c.execute(
                "INSERT INTO reports (token_hash, service_code, description, lat, lon, address, khu_pho,"
                " ward, state, contact_name, contact_email, contact_phone, contact_key, attributes,"
                " created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    token_hash, service_code, description, lat, lon, address, khu_pho, ward, state,
                    contact.get("name"), contact.get("email"), contact.get("phone"), contact_key,
                    json.dumps(attributes, ensure_ascii=False), ts, ts,
                ),
            )  # fmt: skip
            report_id = int(cur.fetchone()["id"])
            _add_update(c, report_id, ts, "received", "received", True, None, None, "resident")
            if khu_pho:
                _add_update(c, report_id, ts, "routed", "assigned", True, routed_note, None, "system")
        report = self.get(report_id)
        assert report is not None
        return report

    def set_media(self, report_id: int, key: str, name: str) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE reports SET media_key = ?, media_name = ? WHERE id = ?", (key, name, report_id))

    def get(self, report_id: int) -> Report | None:
        rows = self.db.read("SELECT * FROM reports WHERE id = ?", (report_id,))
        return _report(rows[0]) if rows else None

    def by_token(self, token_hash: str) -> Report | None:
        rows = self.db.read("SELECT * FROM reports WHERE token_hash = ?", (token_hash,))
        return _report(rows[0]) if rows else None

    def by_media(self, name: str) -> Report | None:
        rows = self.db.read("SELECT * FROM reports WHERE media_name = ?", (name,))
        return _report(rows[0]) if rows else None

    def open_for_contact(self, contact_key: str) -> int:
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self.db.read(
            f"SELECT count(*) AS n FROM reports WHERE contact_key = ? AND hidden = 0 AND state IN ({marks})",
            (contact_key, *OPEN_STATES),
        )
        return int(rows[0]["n"])

    def search(
        self,
        *,
        khu_pho: Collection[str] | None = None,
        wards: Collection[str] | None = None,
        ids: Collection[int] | None = None,
        service_codes: Collection[str] | None = None,
        states: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_hidden: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Report]:
        """Newest first. ``khu_pho``/``wards`` (``None``: everywhere) limit the places: a report is in
        when its khu phố is in ``khu_pho``, or it has none (the ward queue) and its ward is in ``wards``."""
        where: list[str] = []
        params: list[Any] = []

        def among(column: str, values: Collection[Any]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "1 = 0")
            params.extend(values)

        if khu_pho is not None or wards is not None:
            kp, wd = list(khu_pho or ()), list(wards or ())
            # "IN ()" is SQLite's, not PostgreSQL's: an empty list is a false term.
            in_kp = f"khu_pho IN ({','.join('?' * len(kp))})" if kp else "1 = 0"
            in_wd = f"ward IN ({','.join('?' * len(wd))})" if wd else "1 = 0"
            where.append(f"({in_kp} OR (khu_pho IS NULL AND {in_wd}))")
            params += [*kp, *wd]
        if ids is not None:
            among("id", list(ids))
        if service_codes is not None:
            among("service_code", list(service_codes))
        if states is not None:
            among("state", list(states))
        if since is not None:
            where.append("created_us >= ?")
            params.append(to_epoch_us(since))
        if until is not None:
            where.append("created_us < ?")
            params.append(to_epoch_us(until))
        if not include_hidden:
            where.append("hidden = 0")
        sql = "SELECT * FROM reports" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.read(
            sql + " ORDER BY created_us DESC, id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return [_report(r) for r in rows]

    def change(
        self,
        report_id: int,
        *,
        kind: str,
        actor: str,
        public: bool,
        state: State | None = None,
        public_note: str | None = None,
        internal_note: str | None = None,
        **fields: Any,
    ) -> Report:
        """Apply one change (state, columns in ``fields``) and add its update row, in one transaction."""
        ts = now_us()
        allowed = {"service_code", "khu_pho", "ward", "assignee", "hidden", "merged_into"}
        if set(fields) - allowed:
            raise ValueError(f"cannot change {sorted(set(fields) - allowed)}")
        with self.db.tx() as c:
            row = c.execute("SELECT state, closed_us FROM reports WHERE id = ?", (report_id,)).fetchone()
            if row is None:
                raise KeyError(report_id)
            new_state = state or row["state"]
            sets = {**fields, "state": new_state, "updated_us": ts}
            if state is not None:
                sets["closed_us"] = ts if state in CLOSED_STATES else None
            if public and public_note and kind != "routed":  # a routing names the khu phố, not a status
                sets["status_notes"] = public_note
            assignments = ", ".join(f"{k} = ?" for k in sets)
            c.execute(f"UPDATE reports SET {assignments} WHERE id = ?", (*sets.values(), report_id))
            _add_update(c, report_id, ts, kind, new_state, public, public_note, internal_note, actor)
        report = self.get(report_id)
        assert report is not None
        return report

    def updates(self, report_id: int, *, public_only: bool) -> list[Update]:
        sql = "SELECT * FROM report_updates WHERE report_id = ?" + (" AND public = 1" if public_only else "")
        return [_update(r) for r in self.db.read(sql + " ORDER BY id", (report_id,))]

    def public_updates(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        report_ids: Collection[int] | None = None,
        limit: int = 1000,
    ) -> list[Update]:
        """Public updates of visible reports, oldest first (the servicerequestupdates feed)."""
        where, params = ["u.public = 1", "r.hidden = 0"], []
        if since is not None:
            where.append("u.ts_us >= ?")
            params.append(to_epoch_us(since))
        if until is not None:
            where.append("u.ts_us < ?")
            params.append(to_epoch_us(until))
        if report_ids is not None:
            where.append(f"u.report_id IN ({','.join('?' * len(report_ids))})" if report_ids else "1 = 0")
            params += list(report_ids)
        rows = self.db.read(
            "SELECT u.* FROM report_updates u JOIN reports r ON r.id = u.report_id WHERE "
            + " AND ".join(where)
            + " ORDER BY u.ts_us, u.id LIMIT ?",
            (*params, limit),
        )
        return [_update(r) for r in rows]

    # evidence ------------------------------------------------------------------------------------
    def add_evidence(self, report_id: int, event_id: str, linked_by: str, was_locked: bool) -> bool:
        """False when the event was linked to this report already."""
        with self.db.tx() as c:
            cur = c.execute(
                "INSERT INTO report_evidence (report_id, event_id, ts_us, linked_by, was_locked)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (report_id, event_id, now_us(), linked_by, int(was_locked)),
            )
            return cur.rowcount == 1

    def remove_evidence(self, report_id: int, event_id: str) -> Evidence | None:
        with self.db.tx() as c:
            row = c.execute(
                "SELECT * FROM report_evidence WHERE report_id = ? AND event_id = ?", (report_id, event_id)
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "DELETE FROM report_evidence WHERE report_id = ? AND event_id = ?", (report_id, event_id)
            )
        return _evidence(row)

    def evidence(self, report_id: int) -> list[Evidence]:
        rows = self.db.read("SELECT * FROM report_evidence WHERE report_id = ? ORDER BY ts_us", (report_id,))
        return [_evidence(r) for r in rows]

    def evidence_still_needed(self, event_id: str, closed_before_us: int) -> bool:
        """Whether a report that still needs this event links it: open, or closed since the cut-off."""
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self.db.read(
            "SELECT 1 FROM report_evidence e JOIN reports r ON r.id = e.report_id WHERE e.event_id = ?"
            f" AND e.released = 0 AND (r.state IN ({marks}) OR r.closed_us >= ?) LIMIT 1",
            (event_id, *OPEN_STATES, closed_before_us),
        )
        return bool(rows)

    def evidence_due(self, closed_before_us: int, limit: int = 500) -> list[tuple[int, Evidence]]:
        """(report id, link) of unreleased links of reports closed before the cut-off."""
        marks = ",".join("?" * len(CLOSED_STATES))
        rows = self.db.read(
            "SELECT e.* FROM report_evidence e JOIN reports r ON r.id = e.report_id WHERE e.released = 0"
            f" AND r.state IN ({marks}) AND r.closed_us < ? ORDER BY r.closed_us LIMIT ?",
            (*CLOSED_STATES, closed_before_us, limit),
        )
        return [(int(r["report_id"]), _evidence(r)) for r in rows]

    def mark_released(self, report_id: int, event_id: str) -> None:
        with self.db.tx() as c:
            c.execute(
                "UPDATE report_evidence SET released = 1 WHERE report_id = ? AND event_id = ?",
                (report_id, event_id),
            )

    def was_locked_before(self, event_id: str) -> bool:
        """Whether the event was locked by something else before any report linked it."""
        rows = self.db.read(
            "SELECT was_locked FROM report_evidence WHERE event_id = ? ORDER BY ts_us LIMIT 1", (event_id,)
        )
        return bool(rows and rows[0]["was_locked"])


def _add_update(
    c: Any,
    report_id: int,
    ts: int,
    kind: str,
    state: str,
    public: bool,
    public_note: str | None,
    internal_note: str | None,
    actor: str,
) -> None:
    c.execute(
        "INSERT INTO report_updates"
        " (report_id, ts_us, kind, state, public, public_note, internal_note, actor)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (report_id, ts, kind, state, int(public), public_note or None, internal_note or None, actor),
    )


def _report(r: Any) -> Report:
    return Report(
        id=r["id"],
        service_code=r["service_code"],
        description=r["description"],
        lat=r["lat"],
        lon=r["lon"],
        address=r["address"],
        khu_pho=r["khu_pho"],
        ward=r["ward"],
        state=r["state"],
        status_notes=r["status_notes"],
        assignee=r["assignee"],
        contact_name=r["contact_name"],
        contact_email=r["contact_email"],
        contact_phone=r["contact_phone"],
        attributes=json.loads(r["attributes"]),
        media_key=r["media_key"],
        media_name=r["media_name"],
        hidden=bool(r["hidden"]),
        merged_into=r["merged_into"],
        created=from_epoch_us(r["created_us"]),
        updated=from_epoch_us(r["updated_us"]),
        closed=from_epoch_us(r["closed_us"]) if r["closed_us"] is not None else None,
    )


def _update(r: Any) -> Update:
    return Update(
        id=r["id"],
        report_id=r["report_id"],
        time=from_epoch_us(r["ts_us"]),
        kind=r["kind"],
        state=r["state"],
        public=bool(r["public"]),
        public_note=r["public_note"],
        internal_note=r["internal_note"],
        actor=r["actor"],
    )


def _evidence(r: Any) -> Evidence:
    return Evidence(
        event_id=r["event_id"],
        time=from_epoch_us(r["ts_us"]),
        linked_by=r["linked_by"],
        was_locked=bool(r["was_locked"]),
        released=bool(r["released"]),
    )
