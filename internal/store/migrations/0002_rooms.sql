-- Rooms known to the server.
CREATE TABLE rooms (
    room_id      TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    created_ts   BIGINT NOT NULL,
    -- Listed in the public room directory.
    published    BOOLEAN NOT NULL DEFAULT FALSE
);

-- Every event the server holds. stream_pos orders events for /sync and
-- /messages and is NULL for outliers (events known only as auth events).
-- state_before and state_after are state snapshots; status is 0
-- accepted, 1 soft-failed, 2 rejected. json is the event as signed; its
-- redacted form is derived at read time until the retention period ends
-- and the original content is pruned.
CREATE TABLE events (
    event_nid     {{serial}},
    event_id      TEXT NOT NULL UNIQUE,
    room_id       TEXT NOT NULL,
    type          TEXT NOT NULL,
    state_key     TEXT,
    sender        TEXT NOT NULL,
    depth         BIGINT NOT NULL,
    origin_ts     BIGINT NOT NULL,
    stream_pos    BIGINT UNIQUE,
    state_before  BIGINT NOT NULL DEFAULT 0,
    state_after   BIGINT NOT NULL DEFAULT 0,
    status        SMALLINT NOT NULL DEFAULT 0,
    membership    TEXT,
    replaces_nid  BIGINT NOT NULL DEFAULT 0,
    relates_to    TEXT,
    rel_type      TEXT,
    contains_url  BOOLEAN NOT NULL DEFAULT FALSE,
    txn_localpart TEXT,
    txn_device    TEXT,
    txn_id        TEXT,
    redacted_by   TEXT,
    redacted_ts   BIGINT NOT NULL DEFAULT 0,
    pruned        BOOLEAN NOT NULL DEFAULT FALSE,
    json          TEXT NOT NULL
);
CREATE INDEX events_room_stream ON events (room_id, stream_pos);
CREATE INDEX events_room_ts ON events (room_id, origin_ts);
CREATE INDEX events_relations ON events (relates_to, rel_type);
CREATE INDEX events_room_relations ON events (room_id) WHERE relates_to IS NOT NULL;
CREATE INDEX events_room_threads ON events (room_id, stream_pos) WHERE rel_type = 'm.thread';
CREATE INDEX events_member_stream ON events (state_key, stream_pos) WHERE type = 'm.room.member';
CREATE UNIQUE INDEX events_txn ON events (txn_localpart, txn_device, txn_id, room_id) WHERE txn_id IS NOT NULL;
CREATE INDEX events_redaction_prune ON events (redacted_ts) WHERE redacted_ts > 0 AND pruned = FALSE;

-- A room's forward extremities: the events with no children yet.
CREATE TABLE forward_extremities (
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State snapshots are stored as deltas over a parent snapshot (chains
-- are cut short by storing a full snapshot every so often), so that an
-- event's state never copies the whole room state. An entry with
-- event_nid 0 removes the key.
CREATE TABLE state_snapshots (
    snapshot_id {{serial}},
    room_id     TEXT NOT NULL,
    parent_id   BIGINT NOT NULL DEFAULT 0,
    chain_len   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE state_snapshot_entries (
    snapshot_id BIGINT NOT NULL,
    type        TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    event_nid   BIGINT NOT NULL,
    PRIMARY KEY (snapshot_id, type, state_key)
);

-- The current state of each room, materialised for fast membership and
-- state queries. membership is set for m.room.member rows.
CREATE TABLE current_state (
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    state_key  TEXT NOT NULL,
    event_nid  BIGINT NOT NULL,
    membership TEXT,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_member ON current_state (state_key, membership) WHERE type = 'm.room.member';

-- The head of each room: its current state snapshot and greatest depth.
CREATE TABLE room_heads (
    room_id  TEXT PRIMARY KEY,
    snapshot BIGINT NOT NULL,
    depth    BIGINT NOT NULL
);

CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    creator    TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Rooms a user has forgotten (hidden from their sync after leaving).
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

-- Sync filters uploaded with /user/{userId}/filter.
CREATE TABLE filters (
    filter_id  {{serial}},
    localpart  TEXT NOT NULL,
    json       TEXT NOT NULL
);
