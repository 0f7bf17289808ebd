-- What each feed of a user's own reputation filter hid from them, per
-- UTC day (issue 16 item 8: the extent report), kept for 31 days so
-- that a restart keeps the counts. day is YYYY-MM-DD; feed the feed's
-- room ID. Written in batches by reputation.UserFilters.
CREATE TABLE reputation_user_extent (
    user_id TEXT NOT NULL,
    day     TEXT NOT NULL,
    feed    TEXT NOT NULL,
    events  BIGINT NOT NULL,
    invites BIGINT NOT NULL,
    PRIMARY KEY (user_id, day, feed)
);

-- The distinct users, rooms and servers those counts named (kind is
-- 'user', 'room' or 'server'), bounded per user, day and feed by the
-- writer.
CREATE TABLE reputation_user_extent_entities (
    user_id TEXT NOT NULL,
    day     TEXT NOT NULL,
    feed    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    entity  TEXT NOT NULL,
    PRIMARY KEY (user_id, day, feed, kind, entity)
);
