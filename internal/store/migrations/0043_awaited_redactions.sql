-- Redactions whose target this server did not have when the redaction
-- was accepted (it came first over /send, /backfill or
-- /get_missing_events). Synapse keeps redactions by target for the same
-- reason: when the target arrives later it is stored redacted, after the
-- redaction's auth check (same server, or the redact power level).
CREATE TABLE awaited_redactions (
    target_id    TEXT NOT NULL,
    redaction_id TEXT NOT NULL,
    room_id      TEXT NOT NULL,
    PRIMARY KEY (target_id, redaction_id)
);
CREATE INDEX awaited_redactions_room ON awaited_redactions (room_id);
