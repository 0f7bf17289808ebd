-- One-time keys are handed out in the order they were uploaded (spec
-- v1.13, POST /keys/claim: "the server should return keys in the order
-- they were uploaded"): upload_seq numbers a device's uploads, key_id
-- breaks ties within one upload. Keys uploaded before this migration
-- share upload 0 and keep their old key_id order.
ALTER TABLE e2e_one_time_keys ADD COLUMN upload_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX e2e_one_time_keys_order ON e2e_one_time_keys (user_id, device_id, algorithm, upload_seq, key_id);

-- The stream_id of the last m.device_list_update applied to a cached
-- remote device list (or the stream_id /user/devices answered), so that
-- an update whose prev_id names it is applied in place instead of
-- refetching the list (server-server spec "Device Management"). 0: not
-- known (the list came from /user/keys/query).
ALTER TABLE remote_device_lists ADD COLUMN stream_id BIGINT NOT NULL DEFAULT 0;
