-- The admins' report inbox (issue 17 items 1 and 5): a report is resolved
-- by an admin (who and when, '' and NULL while open), and a report of an
-- event may have been forwarded to the room's moderators as server
-- notices (forwarded_to: a JSON array of their user IDs, '' when none).
ALTER TABLE content_reports ADD COLUMN resolved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE content_reports ADD COLUMN resolved_ts BIGINT;
ALTER TABLE content_reports ADD COLUMN forwarded_to TEXT NOT NULL DEFAULT '';
