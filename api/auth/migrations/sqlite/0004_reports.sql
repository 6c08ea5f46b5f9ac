-- Residents' reports, their timelines and their evidence links.
CREATE TABLE IF NOT EXISTS reports (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash    TEXT NOT NULL UNIQUE,
    service_code  TEXT NOT NULL,
    description   TEXT NOT NULL,
    lat           REAL,
    lon           REAL,
    address       TEXT,
    khu_pho       TEXT,
    ward          TEXT,
    state         TEXT NOT NULL,
    status_notes  TEXT,
    assignee      TEXT,
    contact_name  TEXT,
    contact_email TEXT,
    contact_phone TEXT,
    contact_key   TEXT,
    attributes    TEXT NOT NULL,
    media_key     TEXT,
    media_name    TEXT UNIQUE,
    hidden        INTEGER NOT NULL DEFAULT 0,
    merged_into   INTEGER,
    created_us    INTEGER NOT NULL,
    updated_us    INTEGER NOT NULL,
    closed_us     INTEGER
);
CREATE INDEX IF NOT EXISTS reports_by_created ON reports (created_us, id);
CREATE INDEX IF NOT EXISTS reports_by_place ON reports (khu_pho, ward, created_us);
CREATE INDEX IF NOT EXISTS reports_by_contact ON reports (contact_key, state);
CREATE TABLE IF NOT EXISTS report_updates (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id      INTEGER NOT NULL REFERENCES reports(id),
    ts_us          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL,
    public         INTEGER NOT NULL,
    public_note    TEXT,
    internal_note  TEXT,
    actor          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS report_updates_by_report ON report_updates (report_id, id);
CREATE INDEX IF NOT EXISTS report_updates_by_time ON report_updates (ts_us, id);
CREATE TABLE IF NOT EXISTS report_evidence (
    report_id   INTEGER NOT NULL REFERENCES reports(id),
    event_id    TEXT NOT NULL,
    ts_us       INTEGER NOT NULL,
    linked_by   TEXT NOT NULL,
    was_locked  INTEGER NOT NULL,
    released    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (report_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS report_evidence_by_event ON report_evidence (event_id);
