-- Writer batches already applied, so a batch replayed from the journal after a crash never adds its
-- traffic counts twice (transitions are idempotent upserts anyway). Pruned by age.
CREATE TABLE applied_batches (
    batch_id    TEXT PRIMARY KEY,
    applied_us  INTEGER NOT NULL
) WITHOUT ROWID;
