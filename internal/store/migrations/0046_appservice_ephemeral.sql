-- Application services' ephemeral data and encryption extensions (issue
-- 19 item 4: MSC2409 / spec v1.13 ephemeral, MSC3202): how far through
-- the stream each service has been sent receipts, presence and device
-- list changes, so that a service that is down, or a restart, repeats
-- them rather than losing them (Synapse keeps the same positions in
-- application_services_state). Typing is in memory and to-device
-- messages stay in to_device_inbox until a service acknowledges them,
-- so neither needs a position here.
CREATE TABLE appservice_stream_positions (
    as_id    TEXT NOT NULL,
    stream   TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (as_id, stream)
);
-- The services read receipts and device list changes by stream range
-- across all rooms and users.
CREATE INDEX receipts_stream ON receipts (stream_pos);
CREATE INDEX device_list_changes_stream ON device_list_changes (stream_pos);
