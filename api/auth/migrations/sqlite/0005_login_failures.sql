-- Failed logins per account (lower-cased name), so that every API process counts the same ones.
CREATE TABLE IF NOT EXISTS login_failures (
    username  TEXT NOT NULL,
    ts_us     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_user ON login_failures (username, ts_us);
CREATE INDEX IF NOT EXISTS login_failures_by_time ON login_failures (ts_us);
