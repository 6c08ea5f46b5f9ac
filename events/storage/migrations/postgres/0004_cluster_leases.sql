-- Cluster mode: which node's actor may write each camera's events. Every hand-over (a node lost,
-- a camera moved) raises the camera's epoch; a writer's batches carry the epoch it was started
-- with and are refused once it is stale, so an actor cut off from the controller cannot add
-- events after its camera runs elsewhere.
CREATE TABLE cluster_leases (
    camera TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    node TEXT NOT NULL,
    since_us BIGINT NOT NULL,
    seen_us BIGINT NOT NULL
);
