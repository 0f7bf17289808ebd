-- Presence (spec "Presence"): one row per user, local or remote, with
-- the latest state only. stream_pos comes from the event stream, so that
-- /sync finds whose presence changed since its token with the same
-- positions it uses for events; it only moves when the change is one
-- clients must see (Synapse's should_notify), the timestamps are also
-- saved without a new position now and then, so that timeouts survive a
-- restart. status_msg is NULL when none is set.
CREATE TABLE user_presence (
    user_id                   TEXT PRIMARY KEY,
    presence                  TEXT NOT NULL,
    status_msg                TEXT,
    last_active_ts            BIGINT NOT NULL,
    last_user_sync_ts         BIGINT NOT NULL,
    last_federation_update_ts BIGINT NOT NULL,
    currently_active          BOOLEAN NOT NULL,
    stream_pos                BIGINT NOT NULL
);
CREATE INDEX user_presence_stream ON user_presence (stream_pos);
