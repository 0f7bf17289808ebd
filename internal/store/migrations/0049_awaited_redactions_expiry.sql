-- When each awaited redaction was recorded, so that those whose target
-- never arrives expire (rooms.awaitedRedactionTTL). Rows recorded before
-- this column existed read 0 and are stamped with the time of the first
-- expiry pass, which gives them the full period from then.
ALTER TABLE awaited_redactions ADD COLUMN recorded_ts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX awaited_redactions_recorded ON awaited_redactions (recorded_ts);
