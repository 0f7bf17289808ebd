-- Account locking (spec v1.12) and suspension (v1.13): reversible
-- restrictions an administrator sets, unlike deactivation. The client
-- API enforces them; the admin API of the moderation work sets them.
ALTER TABLE users ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE;
