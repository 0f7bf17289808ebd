-- Which rooms a piece of media was posted in (issue 16): a reputation
-- feed that lists a room takes its media down too, and nothing else
-- ties an mxc:// URI to a room. Written, batched, as events referencing
-- media are stored (content.url, content.file.url, the thumbnails of
-- content.info, avatar_url); read on each media download.
CREATE TABLE media_rooms (
    media_origin TEXT NOT NULL,
    media_id     TEXT NOT NULL,
    room_id      TEXT NOT NULL,
    PRIMARY KEY (media_origin, media_id, room_id)
);
