-- Events, their classes, best snapshots and per-minute traffic counts (as migrations/sqlite/0001).
-- Times are integer microseconds since the epoch (UTC), so ordering and the pagination cursor are
-- exact and the same as SQLite's; ids sort bytewise (COLLATE "C") whatever the database's locale.
CREATE TABLE events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    camera      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    type        TEXT NOT NULL,
    classes     TEXT[] NOT NULL,
    track_ids   BIGINT[] NOT NULL,
    start_pts   DOUBLE PRECISION NOT NULL,
    end_pts     DOUBLE PRECISION,
    start_us    BIGINT NOT NULL,
    end_us      BIGINT,
    active      BOOLEAN NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    snapshot    TEXT,
    data        JSONB NOT NULL,
    phase_rank  SMALLINT NOT NULL
);
CREATE INDEX events_by_start ON events (start_us, id);
CREATE INDEX events_by_camera ON events (camera, start_us, id);
CREATE INDEX events_by_type ON events (type, start_us, id);
CREATE INDEX events_active ON events (start_us, id) WHERE active;

CREATE TABLE event_classes (
    class_name  TEXT NOT NULL,
    start_us    BIGINT NOT NULL,
    event_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (class_name, start_us, event_id)
);
CREATE INDEX event_classes_by_event ON event_classes (event_id);

CREATE TABLE snapshots (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    key         TEXT NOT NULL,
    score       DOUBLE PRECISION NOT NULL
);

CREATE TABLE traffic (
    camera      TEXT NOT NULL,
    line        TEXT NOT NULL,
    minute_us   BIGINT NOT NULL,
    class_name  TEXT NOT NULL,
    direction   TEXT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (camera, line, minute_us, class_name, direction)
);
CREATE INDEX traffic_by_camera ON traffic (camera, minute_us);
CREATE INDEX traffic_by_minute ON traffic (minute_us);
