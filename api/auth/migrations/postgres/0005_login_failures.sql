-- Failed logins per account (lower-cased name), so that every API process counts the same ones.
CREATE TABLE login_failures (
    username  TEXT NOT NULL,
    ts_us     BIGINT NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (username, ts_us);
CREATE INDEX login_failures_by_time ON login_failures (ts_us);
