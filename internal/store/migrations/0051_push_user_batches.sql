-- A user's notifications packed: one row holds those of one push batch
-- in one room thread (push worker batches are ~6 events under load), so
-- a message into a room of N members no longer writes N-1 rows. notes
-- lists the positions as offsets from first_pos, "h" marking a
-- highlight ("0,3h,7"); last_pos - first_pos stays below 1024 so that
-- the rows holding a position are found in a bounded range of the key.
-- actions is NULL when it equals the event's shared actions in
-- push_events; a notification with actions of its own has a row of its
-- own, which is what lets the old rows come over one for one.
CREATE TABLE push_user_batches (
    user_id   TEXT NOT NULL,
    last_pos  BIGINT NOT NULL,
    first_pos BIGINT NOT NULL,
    room_id   TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notes     TEXT NOT NULL,
    actions   TEXT,
    PRIMARY KEY (user_id, last_pos)
) {{without_rowid}};

-- Every reader joined push_events: a row without one was never seen.
INSERT INTO push_user_batches (user_id, last_pos, first_pos, room_id, thread_id, notes, actions)
    SELECT n.user_id, n.event_pos, n.event_pos, e.room_id, e.thread_id,
        CASE WHEN n.highlight = 1 THEN '0h' ELSE '0' END, n.actions
    FROM push_user_notifications n JOIN push_events e ON e.event_pos = n.event_pos;
DROP TABLE push_user_notifications;
