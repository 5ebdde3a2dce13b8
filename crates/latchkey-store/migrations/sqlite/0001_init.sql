-- The first schema of latchkey on SQLite.
--
-- Conventions: ids are TEXT (UUID v4 from latchkey-core); times are INTEGER seconds since the Unix epoch;
-- digests are 32-byte BLOBs (SHA-256 of a high-entropy secret, never the secret); sealed values are opaque BLOBs
-- that only latchkey-crypto opens. Tables are STRICT so that a value of the wrong type is refused, not coerced.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    key_hash     BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- A JSON array of handles the key is limited to; NULL means every handle of the user.
    handles      TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE connections (
    id                TEXT    NOT NULL PRIMARY KEY,
    user_id           TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handle            TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    -- OAuthSettings as JSON; holds no secret.
    settings          TEXT    NOT NULL,
    client_secret     BLOB,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'connected', 'needs_reauth', 'error')),
    last_error        TEXT,
    -- The token set: present exactly when access_token is not NULL.
    access_token      BLOB,
    refresh_token     BLOB,
    token_type        TEXT,
    expires_at        INTEGER,
    obtained_at       INTEGER,
    granted_scope     TEXT,
    token_version     INTEGER NOT NULL DEFAULT 0,
    -- Refresh scheduling and backoff.
    failure_count     INTEGER NOT NULL DEFAULT 0,
    retry_after       INTEGER,
    refresh_at        INTEGER,
    last_refreshed_at INTEGER,
    -- The refresh lease: who is refreshing this connection, and until when the claim holds.
    lease_owner       TEXT,
    lease_until       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (user_id, handle),
    CHECK (access_token IS NULL OR (token_type IS NOT NULL AND obtained_at IS NOT NULL))
) STRICT;

-- The background refresher asks for the connections whose refresh time has come.
CREATE INDEX connections_by_refresh_at ON connections (refresh_at);

CREATE TABLE auth_flows (
    id            TEXT    NOT NULL PRIMARY KEY,
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    link_hash     BLOB    NOT NULL UNIQUE CHECK (length(link_hash) = 32),
    state_hash    BLOB    UNIQUE CHECK (state_hash IS NULL OR length(state_hash) = 32),
    browser_hash  BLOB    CHECK (browser_hash IS NULL OR length(browser_hash) = 32),
    pkce_verifier BLOB,
    redirect_uri  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER
) STRICT;

CREATE INDEX auth_flows_by_connection ON auth_flows (connection_id);
CREATE INDEX auth_flows_by_expiry ON auth_flows (expires_at);

CREATE TABLE sessions (
    id_hash    BLOB    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- The one-time set-up link of a fresh installation; put_setup_token keeps at most one row.
CREATE TABLE setup_tokens (
    hash       BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
