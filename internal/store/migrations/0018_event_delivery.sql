-- Who delivers an event to the room's other servers, when not simply
-- "this server, for its own users' events" (Synapse's internal metadata
-- send_on_behalf_of and proactively_send):
-- on_behalf_of is the server that handed the event to this one through a
-- membership handshake (send_join, send_leave, send_knock): this server,
-- resident in the room, forwards it to every other server in the room,
-- and not back to that one; withheld marks an event this server must
-- not send at all, because the handshake that made it already reached
-- the room (our own join through send_join, which the resident server
-- forwards) or because it is an out-of-band membership of a room this
-- server is not in.
ALTER TABLE events ADD COLUMN on_behalf_of TEXT;
ALTER TABLE events ADD COLUMN withheld BOOLEAN NOT NULL DEFAULT FALSE;
