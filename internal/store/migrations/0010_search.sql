-- Full-text search over room events (spec "Server Side Search"). One row
-- per searchable event, holding its searched field (key): content.body of m.room.message,
-- content.name of m.room.name, content.topic of m.room.topic. The
-- indexer (internal/search) fills it from the event stream off the
-- request path; redacted events are removed.
CREATE TABLE search_events (
    event_nid  BIGINT NOT NULL,
    key        TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    sender     TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    origin_ts  BIGINT NOT NULL,
    value      TEXT NOT NULL,
    -- search_rowid ties a row to SQLite's FTS5 index (its rowid); unused
    -- by PostgreSQL, which indexes value itself.
    search_rowid {{serial}}
);
CREATE UNIQUE INDEX search_events_event ON search_events (event_nid);
CREATE INDEX search_events_room ON search_events (room_id, stream_pos);

-- How far the indexer has read the event stream: forward up to high,
-- and backfilled history (negative stream positions) down to low.
CREATE TABLE search_position (
    id   SMALLINT PRIMARY KEY,
    high BIGINT NOT NULL,
    low  BIGINT NOT NULL
);
INSERT INTO search_position (id, high, low) VALUES (1, 0, 0);

-- The full-text index itself is the one engine-specific part: SQLite
-- keeps an FTS5 table over search_events (external content, kept in
-- step by triggers), PostgreSQL a tsvector column with a GIN index.
-- @sqlite
CREATE VIRTUAL TABLE search_fts USING fts5(value, content='search_events', content_rowid='search_rowid', tokenize='porter unicode61');
CREATE TRIGGER search_events_ai AFTER INSERT ON search_events BEGIN INSERT INTO search_fts (rowid, value) VALUES (new.search_rowid, new.value); END;
CREATE TRIGGER search_events_ad AFTER DELETE ON search_events BEGIN INSERT INTO search_fts (search_fts, rowid, value) VALUES ('delete', old.search_rowid, old.value); END;
-- @postgres
ALTER TABLE search_events ADD COLUMN vector tsvector GENERATED ALWAYS AS (to_tsvector('english', value)) STORED;
CREATE INDEX search_events_vector ON search_events USING GIN (vector);
-- @all
