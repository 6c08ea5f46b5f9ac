-- Writer batches already applied, so a batch replayed from the journal after a crash (or retried after
-- a connection lost while committing) never adds its traffic counts twice. Pruned by age.
CREATE TABLE applied_batches (
    batch_id    TEXT PRIMARY KEY,
    applied_us  BIGINT NOT NULL
);
CREATE INDEX applied_batches_by_age ON applied_batches (applied_us);
