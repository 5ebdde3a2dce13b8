-- The audit log: who read a token, who refreshed or changed a connection or an API key, when, and how it ended.
--
-- Append-only. No foreign keys: a record outlives the connection, key or session it names, so the handle is kept
-- as text. Nothing here is secret: API keys appear by id and shown prefix, outcomes as machine words.
-- id orders the log (newest first is id descending) and is the cursor of the API's pages.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    user_id        TEXT    NOT NULL,
    actor          TEXT    NOT NULL
        CHECK (actor IN ('api_key', 'web_session', 'refresher', 'command_line', 'authorization')),
    api_key_id     TEXT,
    api_key_prefix TEXT,
    action         TEXT    NOT NULL CHECK (action IN ('token_read', 'token_refresh', 'connection_create',
        'connection_edit', 'connection_authorize', 'connection_authorized', 'connection_delete', 'api_key_create',
        'api_key_revoke')),
    handle         TEXT,
    subject_key    TEXT,
    outcome        TEXT    NOT NULL CHECK (length(outcome) BETWEEN 1 AND 64),
    CHECK ((actor = 'api_key') = (api_key_id IS NOT NULL AND api_key_prefix IS NOT NULL))
) STRICT;

CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_handle ON audit_log (user_id, handle, id);
