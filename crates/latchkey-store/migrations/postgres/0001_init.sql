-- The first schema of latchkey on PostgreSQL: the same tables, columns and rules as migrations/sqlite.
--
-- Conventions: ids are TEXT (UUID v4 from latchkey-core); times are BIGINT seconds since the Unix epoch, as on
-- SQLite; digests are 32-byte BYTEA (SHA-256 of a high-entropy secret, never the secret); sealed values are opaque
-- BYTEA that only latchkey-crypto opens. Settings and handle lists are `json`, which keeps the exact text
-- latchkey wrote (unlike `jsonb`) and still refuses text that is not JSON.
--
-- Text that is a key or an ordering (ids, usernames, handles) uses the C collation: byte order, as on SQLite, so
-- both backends list rows in the same order whatever the server's locale.
--
-- The unique constraints that callers act on are named, because latchkey recognises them by name:
-- users_username_key is `username_taken`, connections_user_id_handle_key is `handle_taken`.

CREATE TABLE users (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT             NOT NULL,
    is_admin      BOOLEAN          NOT NULL,
    created_at    BIGINT           NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT             NOT NULL,
    prefix       TEXT             NOT NULL,
    key_hash     BYTEA            NOT NULL CHECK (octet_length(key_hash) = 32),
    -- A JSON array of handles the key is limited to; NULL means every handle of the user.
    handles      JSON,
    created_at   BIGINT           NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE connections (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id           TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handle            TEXT COLLATE "C" NOT NULL,
    name              TEXT             NOT NULL,
    provider          TEXT             NOT NULL,
    -- OAuthSettings as JSON; holds no secret.
    settings          JSON             NOT NULL,
    client_secret     BYTEA,
    status            TEXT             NOT NULL
                      CHECK (status IN ('pending', 'connected', 'needs_reauth', 'error')),
    last_error        TEXT,
    -- The token set: present exactly when access_token is not NULL.
    access_token      BYTEA,
    refresh_token     BYTEA,
    token_type        TEXT,
    expires_at        BIGINT,
    obtained_at       BIGINT,
    granted_scope     TEXT,
    token_version     BIGINT           NOT NULL DEFAULT 0,
    -- Refresh scheduling and backoff.
    failure_count     BIGINT           NOT NULL DEFAULT 0,
    retry_after       BIGINT,
    refresh_at        BIGINT,
    last_refreshed_at BIGINT,
    -- The refresh lease: who is refreshing this connection, and until when the claim holds.
    lease_owner       TEXT,
    lease_until       BIGINT,
    created_at        BIGINT           NOT NULL,
    updated_at        BIGINT           NOT NULL,
    CONSTRAINT connections_user_id_handle_key UNIQUE (user_id, handle),
    CHECK (access_token IS NULL OR (token_type IS NOT NULL AND obtained_at IS NOT NULL))
);

-- The background refresher asks for the connections whose refresh time has come. Only connections that can be
-- refreshed at all are in this index, so it stays small however many connections wait for a person.
CREATE INDEX connections_due ON connections (refresh_at, id)
    WHERE refresh_token IS NOT NULL AND status IN ('connected', 'error');

CREATE TABLE auth_flows (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    link_hash     BYTEA            NOT NULL CHECK (octet_length(link_hash) = 32),
    state_hash    BYTEA            CHECK (state_hash IS NULL OR octet_length(state_hash) = 32),
    browser_hash  BYTEA            CHECK (browser_hash IS NULL OR octet_length(browser_hash) = 32),
    pkce_verifier BYTEA,
    redirect_uri  TEXT             NOT NULL,
    created_at    BIGINT           NOT NULL,
    expires_at    BIGINT           NOT NULL,
    started_at    BIGINT,
    completed_at  BIGINT,
    CONSTRAINT auth_flows_link_hash_key UNIQUE (link_hash),
    CONSTRAINT auth_flows_state_hash_key UNIQUE (state_hash)
);

CREATE INDEX auth_flows_by_connection ON auth_flows (connection_id);
CREATE INDEX auth_flows_by_expiry ON auth_flows (expires_at);

CREATE TABLE sessions (
    id_hash    BYTEA            NOT NULL PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT             NOT NULL,
    created_at BIGINT           NOT NULL,
    expires_at BIGINT           NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- The one-time set-up link of a fresh installation; put_setup_token keeps at most one row.
CREATE TABLE setup_tokens (
    hash       BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(hash) = 32),
    expires_at BIGINT NOT NULL
);

CREATE TABLE meta (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA            NOT NULL
);
