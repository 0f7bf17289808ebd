-- Notifications, compact: a message in a room of N local members
-- notifies N-1 of them, so the per-user row is what a busy room writes
-- most. What every recipient shares (room, thread, event, time, the
-- actions most of them got) is stored once per event in push_events;
-- push_user_notifications holds one small row per user and event, in a
-- single B-tree on (user_id, event_pos). event_pos doubles as the
-- /notifications paging token.
CREATE TABLE push_events (
    event_pos BIGINT PRIMARY KEY,
    room_id   TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    actions   TEXT NOT NULL
);
-- actions is NULL when it equals the event's shared actions.
CREATE TABLE push_user_notifications (
    user_id   TEXT NOT NULL,
    event_pos BIGINT NOT NULL,
    highlight INTEGER NOT NULL,
    actions   TEXT,
    PRIMARY KEY (user_id, event_pos)
) {{without_rowid}};

-- Read marks replace a per-row unread flag (which needed a second index
-- and an UPDATE of every row a receipt covered): a notification is read
-- when its event_pos is at or below the mark of its thread or the
-- room-wide mark (thread_id '*', set by unthreaded receipts). thread_id
-- '' is the main timeline.
CREATE TABLE push_read (
    user_id   TEXT NOT NULL,
    room_id   TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    read_pos  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);
-- Storing a message's notifications needs the marks of the room that
-- cover it: few or none, found in one lookup rather than one per member.
CREATE INDEX push_read_room ON push_read (room_id, read_pos);

-- first_pos is a lower bound of the thread's unread notifications, so
-- that a receipt recounts from there rather than from the room's start.
-- counted_pos is the stream position of the counters' latest increase,
-- which /sync uses to find rooms whose counts changed alone: it replaces
-- push_counts_changed, whose row and index per user and room were
-- written for every message besides these counters. /sync answers that
-- question from memory while the server runs; the column serves the
-- rest (after a restart), scanning one user's counters.
ALTER TABLE push_unread ADD COLUMN first_pos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE push_unread ADD COLUMN counted_pos BIGINT NOT NULL DEFAULT 0;
UPDATE push_unread SET counted_pos = (SELECT c.counted_pos FROM push_counts_changed c
    WHERE c.user_id = push_unread.user_id AND c.room_id = push_unread.room_id)
    WHERE EXISTS (SELECT 1 FROM push_counts_changed c WHERE c.user_id = push_unread.user_id AND c.room_id = push_unread.room_id);
DROP TABLE push_counts_changed;

INSERT INTO push_events (event_pos, room_id, thread_id, event_id, ts, actions)
    SELECT event_pos, MIN(room_id), MIN(thread_id), MIN(event_id), MIN(ts), MIN(actions)
    FROM push_notifications GROUP BY event_pos;
INSERT INTO push_user_notifications (user_id, event_pos, highlight, actions)
    SELECT n.user_id, n.event_pos, MAX(n.highlight), MAX(n.actions)
    FROM push_notifications n GROUP BY n.user_id, n.event_pos;
UPDATE push_user_notifications SET actions = NULL
    WHERE actions = (SELECT e.actions FROM push_events e WHERE e.event_pos = push_user_notifications.event_pos);
INSERT INTO push_read (user_id, room_id, thread_id, read_pos)
    SELECT user_id, room_id, thread_id, MAX(event_pos) FROM push_notifications
    WHERE unread = 0 GROUP BY user_id, room_id, thread_id;
DROP TABLE push_notifications;
