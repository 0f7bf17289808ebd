-- Rooms an admin blocked (Synapse's blocked_rooms): local users may not
-- join, be invited to or knock on them. A room may be blocked before the
-- server knows it, and stays blocked after it is purged.
CREATE TABLE blocked_rooms (
    room_id    TEXT PRIMARY KEY,
    blocked_by TEXT NOT NULL
);
