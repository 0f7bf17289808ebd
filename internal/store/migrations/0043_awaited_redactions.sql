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

-- Holes in the middle of a room's history: an event stored after a gap
-- that /get_missing_events could not fill (event_id, at stream position
-- top). Stream positions low..top-1 were left unused for the hole, so
-- that events backfilled into it later sit between their neighbours in
-- /messages; next is the highest one still free (they are handed out
-- downwards, as backfill walks back from the gap).
CREATE TABLE history_gaps (
    event_id TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL,
    top      BIGINT NOT NULL,
    low      BIGINT NOT NULL,
    next     BIGINT NOT NULL
);
CREATE INDEX history_gaps_room ON history_gaps (room_id, top);
