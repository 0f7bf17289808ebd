-- Account data: global (room_id '') and per-room, one row per type, the
-- latest content only. stream_pos comes from the event stream, so that
-- /sync finds what changed since its token with the same positions it
-- uses for events.
CREATE TABLE account_data (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    content    TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

-- Notifications: events the user's push rules said to notify about.
-- event_pos is the event's stream position (read receipts clear up to
-- one); counted_pos is the event stream position the notification was
-- stored at, after the event (evaluation runs behind it), which /sync
-- uses to find rooms whose unread counts changed. thread_id is '' for the
-- main timeline.
CREATE TABLE push_notifications (
    notif_id    {{serial}},
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    thread_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_pos   BIGINT NOT NULL,
    counted_pos BIGINT NOT NULL,
    actions     TEXT NOT NULL,
    highlight   INTEGER NOT NULL,
    ts          BIGINT NOT NULL,
    unread      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX push_notifications_user ON push_notifications (user_id, notif_id);
CREATE INDEX push_notifications_unread ON push_notifications (user_id, room_id, unread, event_pos);
-- Each user's unread counts per room and thread ('' the main timeline),
-- kept as notifications are stored and read, so that a /sync reads them
-- rather than counting a room's unread rows every time.
CREATE TABLE push_unread (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    notifs     BIGINT NOT NULL,
    highlights BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

-- When each user's counts in each room last changed (the latest
-- counted_pos), so that /sync finds rooms whose counts changed alone: one
-- row per user and room rather than an index entry per notification.
CREATE TABLE push_counts_changed (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    counted_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX push_counts_changed_pos ON push_counts_changed (user_id, counted_pos);

-- HTTP pushers, per user and (app_id, pushkey). They belong to the device
-- that set them and go with it when it logs out or is deleted, as in
-- Synapse.
CREATE TABLE pushers (
    localpart           TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT NOT NULL,
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,
    pushkey_ts          BIGINT NOT NULL,
    PRIMARY KEY (localpart, app_id, pushkey),
    FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX pushers_key ON pushers (app_id, pushkey);

-- Reports of events, rooms and users, for the server's admins. event_id
-- and target_user_id are '' when not reported on.
CREATE TABLE content_reports (
    report_id      {{serial}},
    reporter       TEXT NOT NULL,
    room_id        TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    reason         TEXT NOT NULL,
    score          BIGINT,
    received_ts    BIGINT NOT NULL
);
