-- Video clips of events, and evidence locks (a locked event and its media are never purged).
CREATE TABLE clips (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    key         TEXT NOT NULL
);

CREATE TABLE locks (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    locked_us   BIGINT NOT NULL
);

CREATE INDEX events_by_end ON events (end_us, id) WHERE NOT active;
