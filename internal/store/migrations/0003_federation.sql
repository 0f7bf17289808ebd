-- Other servers' signing keys, fetched from them or from a notary.
-- response is the server's own signed /_matrix/key/v2/server answer, kept
-- so that this server can act as a notary for it.
CREATE TABLE server_keys (
    server_name    TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    verify_key     TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_name, key_id)
);
CREATE TABLE server_key_responses (
    server_name    TEXT PRIMARY KEY,
    valid_until_ts BIGINT NOT NULL,
    response       TEXT NOT NULL
);

-- Inbound /send transactions already processed, per origin, with the
-- answer given, so that a retried transaction is not processed twice.
CREATE TABLE federation_inbound_txns (
    origin      TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    response    TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);

-- The federation sender's progress through the event stream: every local
-- event up to position has been queued for its destinations.
CREATE TABLE federation_sender_position (
    id       INTEGER PRIMARY KEY,
    position BIGINT NOT NULL
);

-- PDUs waiting for delivery, per destination, in queue order.
CREATE TABLE federation_queue_pdus (
    queue_id    {{serial}},
    destination TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    event_nid   BIGINT NOT NULL
);
CREATE INDEX federation_queue_pdus_dest ON federation_queue_pdus (destination, queue_id);

-- EDUs waiting for delivery.
CREATE TABLE federation_queue_edus (
    queue_id    {{serial}},
    destination TEXT NOT NULL,
    edu_type    TEXT NOT NULL,
    content     TEXT NOT NULL
);
CREATE INDEX federation_queue_edus_dest ON federation_queue_edus (destination, queue_id);

-- Delivery state of destinations that have failed: consecutive failures
-- and when to try again.
CREATE TABLE federation_destinations (
    destination    TEXT PRIMARY KEY,
    failures       INTEGER NOT NULL DEFAULT 0,
    retry_after_ts BIGINT NOT NULL DEFAULT 0
);

-- OpenID tokens a user hands to a third party (an integration manager),
-- which checks them with /_matrix/federation/v1/openid/userinfo.
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    localpart  TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
