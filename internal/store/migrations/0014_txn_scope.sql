-- Transaction IDs are scoped to the request's path and access token
-- (client-server spec "Transaction identifiers"): the same txnId under
-- /send/m.room.message and /send/m.reaction, or redacting two different
-- events, names two requests. txn_scope holds the path between the room
-- and the txnId ("send/<type>", "redact/<event ID>"); rows sent before
-- this migration were all sends.
ALTER TABLE events ADD COLUMN txn_scope TEXT;
UPDATE events SET txn_scope = 'send/' || type WHERE txn_id IS NOT NULL;
DROP INDEX events_txn;
CREATE UNIQUE INDEX events_txn ON events (txn_localpart, txn_device, room_id, txn_scope, txn_id) WHERE txn_id IS NOT NULL;

-- /sendToDevice/{eventType}/{txnId}: the event type is part of the path.
-- Transactions recorded before keep an empty type, which no new request
-- has.
CREATE TABLE to_device_txns_scoped (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    event_type TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    ts         BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, event_type, txn_id)
);
INSERT INTO to_device_txns_scoped (user_id, device_id, event_type, txn_id, ts) SELECT user_id, device_id, '', txn_id, ts FROM to_device_txns;
DROP TABLE to_device_txns;
ALTER TABLE to_device_txns_scoped RENAME TO to_device_txns;
