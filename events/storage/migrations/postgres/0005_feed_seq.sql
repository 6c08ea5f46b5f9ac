-- The shared live feed (events/storage/pg_feed.py): every stored transition gives its event a new
-- feed_seq from one sequence, so a listener that lost its connection reads the events changed since
-- the last change it saw, in the order each camera wrote them. Rows written before this version
-- keep NULL (they are history, not feed).
CREATE SEQUENCE events_feed_seq;
ALTER TABLE events ADD COLUMN feed_seq BIGINT;
CREATE INDEX events_by_feed_seq ON events (feed_seq) WHERE feed_seq IS NOT NULL;
