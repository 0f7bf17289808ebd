-- Rooms whose partial state was completed, at the stream position the
-- completion took (Synapse's un_partial_stated_room_stream): an
-- incremental /sync whose range holds the position sends the room again
-- as newly joined, with its full state, so that a client that synced
-- while the state was partial learns the members it lacked.
CREATE TABLE partial_state_completed (
    room_id    TEXT NOT NULL,
    stream_pos BIGINT NOT NULL
);
CREATE INDEX partial_state_completed_pos ON partial_state_completed (stream_pos);
