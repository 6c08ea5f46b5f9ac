-- Found by the city benchmark (benchmarks/city.py). The event feed filtered by type for a khu phố or a ward runs one query per camera in scope
-- (api/scoped_events.py); with only (camera, start_us, id) a busy camera's page of a type it rarely
-- has read all of the camera's events (19,906 rows for one page with 10 million events stored).
-- Building it locks writes to events while it runs: on a large existing table, create it first with
-- CREATE INDEX CONCURRENTLY under this name (this migration then fails on the name: drop theirs or
-- record version 6 by hand), or upgrade in a quiet hour.
CREATE INDEX events_by_camera_type ON events (camera, type, start_us, id);
