-- Content repository (spec "Content repository"). One row per mxc://
-- URI, local uploads and cached remote media alike (origin is the server
-- name of the URI). Bytes live outside the database, content-addressed
-- by sha256, so that several media IDs may share one file; sha256 is ''
-- while an async upload (/create) waits for its bytes, until
-- unused_expires_ts.
CREATE TABLE media (
    origin            TEXT NOT NULL,
    media_id          TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    filename          TEXT NOT NULL,
    size              BIGINT NOT NULL,
    sha256            TEXT NOT NULL,
    uploader          TEXT NOT NULL,
    created_ts        BIGINT NOT NULL,
    unused_expires_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_pending ON media (uploader, unused_expires_ts);

-- Thumbnails, keyed by the size and method they were made for (the
-- configured sizes, or the one a client asked for); width and height are
-- the thumbnail's own dimensions.
CREATE TABLE media_thumbnails (
    origin        TEXT NOT NULL,
    media_id      TEXT NOT NULL,
    req_width     INTEGER NOT NULL,
    req_height    INTEGER NOT NULL,
    method        TEXT NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_ts    BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id, req_width, req_height, method)
);
CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);

-- Settings the media repository records once, such as the time the
-- unauthenticated endpoints were frozen (legacy_cutoff_ts).
CREATE TABLE media_settings (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
