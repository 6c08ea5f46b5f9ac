-- PROPOSED by the city benchmark (renumber at merge: after the feed sequence and the security tables).
-- The review feed filtered by type for a khu phố or a ward runs one query per camera in scope
-- (api/scoped_events.py); with only (camera, start_us, id) a busy camera's page of a type it rarely
-- has read all of the camera's events (19,906 rows for one page with 10 million events stored).
CREATE INDEX events_by_camera_type ON events (camera, type, start_us, id);
