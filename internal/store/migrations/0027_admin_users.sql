-- Synapse's admin API for users (issue 17 item 6): a shadow-banned
-- user's sends are answered with made-up event IDs and never delivered;
-- an erased user (deactivated with erase) has their events served
-- redacted to those who were not joined when they were sent.
ALTER TABLE users ADD COLUMN shadow_banned BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;

-- Per-user rate-limit overrides (Synapse's ratelimit_override): 0 and 0
-- exempt the user from every limit.
CREATE TABLE ratelimit_overrides (
    localpart           TEXT PRIMARY KEY REFERENCES users (localpart) ON DELETE CASCADE,
    messages_per_second BIGINT NOT NULL,
    burst_count         BIGINT NOT NULL
);
