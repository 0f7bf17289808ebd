-- Reputation feeds (issue 16): the policy rooms the server subscribes
-- to, and the log of what their blended verdicts made it enforce.
-- feed is what the admin or the configuration named (a room ID or an
-- alias); room_id the room it resolved to once joined ('' until then).
-- source is 'config' (the config file or MYELIN_REPUTATION_FEEDS,
-- re-read at every start) or 'api' (the admin API).
CREATE TABLE reputation_feeds (
    feed       TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL DEFAULT '',
    weight     DOUBLE PRECISION NOT NULL,
    allow_list BOOLEAN NOT NULL DEFAULT FALSE,
    source     TEXT NOT NULL,
    added_ts   BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);

-- One row per enforcement: what was done (action), to which entity,
-- with which score, and about what (detail: an event ID, a media ID, a
-- localpart; never message content). The feeds that listed the entity
-- are in reputation_decision_feeds, for per-feed counts.
CREATE TABLE reputation_decisions (
    decision_id {{serial}},
    ts          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    entity      TEXT NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX reputation_decisions_ts ON reputation_decisions (ts);

CREATE TABLE reputation_decision_feeds (
    decision_id BIGINT NOT NULL,
    feed        TEXT NOT NULL,
    PRIMARY KEY (feed, decision_id)
);
CREATE INDEX reputation_decision_feeds_decision ON reputation_decision_feeds (decision_id);
