-- Sliding sync (MSC4186, issue 18).
--
-- sliding_sync_room_meta: per room, what sorting and filtering a user's room list
-- needs without reading the room: the bump_stamp (the stream position of
-- the room's last accepted event of a bump type, as Synapse's
-- sliding_sync_joined_rooms.bump_stamp) and the room type (the create
-- event's content.type; typed is TRUE once it is known, room_type NULL
-- then meaning "no type"). The store keeps bump_stamp as events are
-- persisted; a room without a row (created before this migration, or
-- joined over federation, whose create event is an outlier) gets one the
-- first time sliding sync reads it.
CREATE TABLE sliding_sync_room_meta (
    room_id    TEXT PRIMARY KEY,
    bump_stamp BIGINT NOT NULL DEFAULT 0,
    typed      BOOLEAN NOT NULL DEFAULT FALSE,
    room_type  TEXT
);

-- sliding_sync_connections: a connection's position (token, seq: the
-- pos "token_seq" it last answered), the event stream position it covers
-- (upto) and its small per-connection values (lists' counts, extension
-- positions) as JSON, so that a connection resumes after a restart.
-- last_used_ts expires it.
CREATE TABLE sliding_sync_connections (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    conn_id      TEXT NOT NULL,
    token        TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    upto         BIGINT NOT NULL,
    extra        TEXT NOT NULL,
    last_used_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, conn_id)
);
CREATE INDEX sliding_sync_connections_used ON sliding_sync_connections (last_used_ts);

-- sliding_sync_rooms: what a connection (by its token) has been sent of
-- one room, encoded by internal/slidingsync: written only when it
-- changes.
CREATE TABLE sliding_sync_rooms (
    token   TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (token, room_id)
);
