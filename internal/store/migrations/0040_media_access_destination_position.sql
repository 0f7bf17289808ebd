-- When local media was last downloaded or thumbnailed (issue 17), as
-- Synapse's local_media_repository.last_access_ts: the admin API's
-- delete-by-date keeps media accessed since before_ts. 0 is never.
ALTER TABLE media ADD COLUMN last_access_ts BIGINT NOT NULL DEFAULT 0;

-- The stream position of the last event delivered to a destination
-- (Synapse's destinations.last_successful_stream_ordering), which the
-- federation admin API shows. 0 is none yet.
ALTER TABLE federation_destinations ADD COLUMN last_successful_stream_ordering BIGINT NOT NULL DEFAULT 0;

-- The stream position of the last event of each room delivered to a
-- destination (Synapse's destination_rooms.stream_ordering), which the
-- federation admin API's destination rooms show.
CREATE TABLE federation_destination_rooms (
    destination     TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (destination, room_id)
);
