-- Review items, the events filed under them, comments and who has seen what.
CREATE TABLE IF NOT EXISTS review_items (
    id          TEXT PRIMARY KEY,
    camera      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    type        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    state       TEXT NOT NULL,
    start_us    INTEGER NOT NULL,
    last_us     INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    tracks      TEXT NOT NULL,
    classes     TEXT NOT NULL,
    assignee    TEXT,
    resolution  TEXT,
    note        TEXT,
    created_us  INTEGER NOT NULL,
    acked_us    INTEGER,
    resolved_us INTEGER,
    seq         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS review_by_start ON review_items (start_us, id);
CREATE INDEX IF NOT EXISTS review_by_camera_rule ON review_items (camera, rule, last_us);
CREATE UNIQUE INDEX IF NOT EXISTS review_by_seq ON review_items (seq);
CREATE TABLE IF NOT EXISTS review_events (
    event_id  TEXT PRIMARY KEY,
    item_id   TEXT NOT NULL REFERENCES review_items(id),
    start_us  INTEGER NOT NULL,
    active    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS review_events_by_item ON review_events (item_id, start_us);
CREATE TABLE IF NOT EXISTS review_comments (
    id       INTEGER PRIMARY KEY,
    item_id  TEXT NOT NULL REFERENCES review_items(id),
    author   TEXT NOT NULL,
    ts_us    INTEGER NOT NULL,
    text     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_seen (
    item_id   TEXT NOT NULL,
    username  TEXT NOT NULL,
    ts_us     INTEGER NOT NULL,
    PRIMARY KEY (item_id, username)
) WITHOUT ROWID;
