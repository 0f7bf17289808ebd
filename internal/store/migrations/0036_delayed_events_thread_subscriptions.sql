-- MSC4140 delayed events: an event a local user asked to be sent later
-- (Synapse's delayed_events). A row stays scheduled while finalised_ts is
-- NULL; once sent, cancelled or failed it is kept a while as "finalised"
-- (finalised_event_id when sent, finalised_error when sending failed,
-- neither when cancelled), for GET .../delayed_events?status=finalised.
CREATE TABLE delayed_events (
    delay_id           TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    device_id          TEXT NOT NULL DEFAULT '',
    room_id            TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    -- NULL for a message event.
    state_key          TEXT,
    content            TEXT NOT NULL,
    delay_ms           BIGINT NOT NULL,
    send_ts            BIGINT NOT NULL,
    finalised_ts       BIGINT,
    finalised_event_id TEXT,
    finalised_error    TEXT,
    -- The device's transaction of a delayed /send (device, event type
    -- and transaction ID), so that a retried request answers the same
    -- delay ID; NULL for state events.
    txn_key            TEXT
);
CREATE UNIQUE INDEX delayed_events_txn ON delayed_events (user_id, txn_key);
CREATE INDEX delayed_events_due ON delayed_events (send_ts) WHERE finalised_ts IS NULL;
CREATE INDEX delayed_events_user ON delayed_events (user_id, send_ts);

-- MSC4306 thread subscriptions: per user and thread, whether the user is
-- subscribed (automatic when a client subscribed on the user's behalf,
-- naming the event that caused it) or unsubscribed. stream_id orders the
-- changes of all users (ChangesSince, for sliding sync's MSC4308
-- extension); unsubscribed_at is the event stream position of the room
-- when the user unsubscribed, against which a later automatic
-- subscription's cause is compared (M_CONFLICTING_UNSUBSCRIPTION).
CREATE TABLE thread_subscriptions (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    thread_root_id  TEXT NOT NULL,
    subscribed      BOOLEAN NOT NULL,
    automatic       BOOLEAN NOT NULL DEFAULT FALSE,
    unsubscribed_at BIGINT NOT NULL DEFAULT 0,
    stream_id       BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_root_id)
);
CREATE INDEX thread_subscriptions_stream ON thread_subscriptions (user_id, stream_id);
