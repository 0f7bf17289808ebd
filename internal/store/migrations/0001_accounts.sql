-- Local accounts. user_id is the full @localpart:server_name.
CREATE TABLE users (
    localpart     TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL DEFAULT '',
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest      BOOLEAN NOT NULL DEFAULT FALSE,
    user_type     TEXT NOT NULL DEFAULT '',
    deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts    BIGINT NOT NULL
);

-- Profile fields (displayname, avatar_url, and the extensible fields of
-- spec v1.16) as JSON values, one row per field.
CREATE TABLE profile_fields (
    localpart TEXT NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    field     TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (localpart, field)
);

CREATE TABLE devices (
    localpart       TEXT NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    device_id       TEXT NOT NULL,
    display_name    TEXT,
    created_ts      BIGINT NOT NULL,
    last_seen_ts    BIGINT NOT NULL DEFAULT 0,
    last_seen_ip    TEXT NOT NULL DEFAULT '',
    last_seen_agent TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (localpart, device_id)
);

-- Tokens are stored as the hex SHA-256 of the opaque value handed out.
-- expires_ts 0 means the token does not expire. refresh_hash links an
-- access token to the refresh token issued beside it.
CREATE TABLE access_tokens (
    token_hash   TEXT PRIMARY KEY,
    localpart    TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    created_ts   BIGINT NOT NULL,
    expires_ts   BIGINT NOT NULL DEFAULT 0,
    refresh_hash TEXT NOT NULL DEFAULT '',
    used         BOOLEAN NOT NULL DEFAULT FALSE,
    FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (localpart, device_id);

-- A refresh token stays valid after use until the pair it produced is
-- used (Synapse's behaviour, so that a client whose /refresh response was
-- lost can retry). next_hash is that successor refresh token.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    localpart  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    next_hash  TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (localpart, device_id);
CREATE INDEX refresh_tokens_next ON refresh_tokens (next_hash);

-- Single-use m.login.token tokens (from /login/get_token).
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    localpart  TEXT NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    expires_ts BIGINT NOT NULL
);

-- User-Interactive Auth sessions, kept in the database so that a session
-- survives a restart. completed and data are JSON.
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    method     TEXT NOT NULL,
    uri        TEXT NOT NULL,
    localpart  TEXT NOT NULL DEFAULT '',
    completed  TEXT NOT NULL DEFAULT '[]',
    data       TEXT NOT NULL DEFAULT '{}',
    expires_ts BIGINT NOT NULL
);
CREATE INDEX uia_sessions_expiry ON uia_sessions (expires_ts);

-- Registration tokens (spec m.login.registration_token; managed through
-- Synapse's admin API). uses_allowed and expiry_time NULL mean unlimited.
CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed BIGINT,
    pending      BIGINT NOT NULL DEFAULT 0,
    completed    BIGINT NOT NULL DEFAULT 0,
    expiry_time  BIGINT
);
