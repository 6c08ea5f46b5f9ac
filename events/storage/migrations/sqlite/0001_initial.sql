-- Events, their classes, best snapshots and per-minute traffic counts.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    camera      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    type        TEXT NOT NULL,
    classes     TEXT NOT NULL,
    track_ids   TEXT NOT NULL,
    start_pts   REAL NOT NULL,
    end_pts     REAL,
    start_us    INTEGER NOT NULL,
    end_us      INTEGER,
    active      INTEGER NOT NULL,
    score       REAL NOT NULL,
    snapshot    TEXT,
    data        TEXT NOT NULL,
    phase_rank  INTEGER NOT NULL
);
CREATE INDEX events_by_start ON events (start_us, id);
CREATE INDEX events_by_camera ON events (camera, start_us, id);
CREATE INDEX events_by_type ON events (type, start_us, id);
CREATE INDEX events_active ON events (start_us, id) WHERE active = 1;

CREATE TABLE event_classes (
    class_name  TEXT NOT NULL,
    start_us    INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (class_name, start_us, event_id)
) WITHOUT ROWID;
CREATE INDEX event_classes_by_event ON event_classes (event_id);

CREATE TABLE snapshots (
    event_id    TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    score       REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE traffic (
    camera      TEXT NOT NULL,
    line        TEXT NOT NULL,
    minute_us   INTEGER NOT NULL,
    class_name  TEXT NOT NULL,
    direction   TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (camera, line, minute_us, class_name, direction)
) WITHOUT ROWID;
CREATE INDEX traffic_by_camera ON traffic (camera, minute_us);
CREATE INDEX traffic_by_minute ON traffic (minute_us);
