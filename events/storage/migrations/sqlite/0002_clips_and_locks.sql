-- Video clips of events, and evidence locks (a locked event and its media are never purged).
CREATE TABLE clips (
    event_id    TEXT PRIMARY KEY,
    key         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE locks (
    event_id    TEXT PRIMARY KEY,
    locked_us   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX events_by_end ON events (end_us) WHERE active = 0;
