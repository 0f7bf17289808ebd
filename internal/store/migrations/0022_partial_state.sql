-- Rooms joined with partial state (send_join with omit_members,
-- MSC3706/MSC3902, spec v1.6): the join's state lacked the membership
-- events the resident server omitted. join_event_id is the join whose
-- state is being completed; servers (a JSON list) are the servers the
-- resident server said were in the room, from whom the full state is
-- fetched and to whom events are sent until it is complete. The row is
-- deleted once the full state is stored (Synapse's partial_state_rooms).
CREATE TABLE partial_state_rooms (
    room_id       TEXT PRIMARY KEY,
    join_event_id TEXT NOT NULL,
    servers       TEXT NOT NULL
);
