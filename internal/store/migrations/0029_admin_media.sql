-- Synapse's media admin API. quarantined_by names the admin who
-- quarantined the media ('' when it is not): quarantined media is never
-- served, and a row is kept for quarantined remote media even when no
-- copy is cached, so that it is never fetched again. safe_from_quarantine
-- is set by the protect API: such media is never quarantined.
ALTER TABLE media ADD COLUMN quarantined_by TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN safe_from_quarantine BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX media_uploader_ts ON media (uploader, created_ts);
CREATE INDEX media_origin_ts ON media (origin, created_ts);

-- The federation admin API's retry timings (Synapse's destinations
-- table): failure_ts is when the current run of failures began,
-- retry_last_ts the last failed attempt.
ALTER TABLE federation_destinations ADD COLUMN failure_ts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE federation_destinations ADD COLUMN retry_last_ts BIGINT NOT NULL DEFAULT 0;
