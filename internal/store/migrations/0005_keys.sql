-- End-to-end encryption (client-server spec "End-to-End Encryption").
-- Key objects are kept as the JSON the client signed: the signatures
-- cover their canonical form, so the server never rebuilds them.

-- Local devices' identity keys (POST /keys/upload device_keys).
CREATE TABLE e2e_device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys; a claimed key is deleted.
CREATE TABLE e2e_one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- Fallback keys: one per device and algorithm, handed out (and marked
-- used) when the one-time keys run out.
CREATE TABLE e2e_fallback_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    used      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Local users' cross-signing keys: key_type is master, self_signing or
-- user_signing.
CREATE TABLE e2e_cross_signing_keys (
    user_id  TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded with /keys/signatures/upload, merged into the
-- signed object (a device's keys or a cross-signing key, named by
-- target_key: the device ID or the key's unpadded base64) when queried.
CREATE TABLE e2e_signatures (
    target_user TEXT NOT NULL,
    target_key  TEXT NOT NULL,
    signer_user TEXT NOT NULL,
    signer_key  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_user, signer_key)
);

-- The device-list change stream: a row whenever a user's devices,
-- device keys or cross-signing keys change. Positions come from the
-- event stream, so that one sync token covers both.
CREATE TABLE device_list_changes (
    stream_pos BIGINT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (stream_pos, user_id)
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_pos);

-- Other servers' users' device lists, as /user/keys/query answered;
-- stale when a device-list update says they changed.
CREATE TABLE remote_device_lists (
    user_id     TEXT PRIMARY KEY,
    devices     TEXT NOT NULL,
    master_key  TEXT,
    self_key    TEXT,
    stale       BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_ts  BIGINT NOT NULL
);

-- To-device messages waiting for a local device, delivered by /sync in
-- message_id order and deleted once the device acknowledges them.
CREATE TABLE to_device_inbox (
    message_id {{serial}},
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL
);
CREATE INDEX to_device_inbox_device ON to_device_inbox (user_id, device_id, message_id);

-- /sendToDevice transaction IDs already handled, per sending device.
CREATE TABLE to_device_txns (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Server-side key backup (client-server spec "Server-side key backups").
CREATE TABLE key_backup_versions (
    user_id   TEXT NOT NULL,
    version   BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag      BIGINT NOT NULL DEFAULT 0,
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);
CREATE TABLE key_backup_sessions (
    user_id             TEXT NOT NULL,
    version             BIGINT NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count     BIGINT NOT NULL,
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
