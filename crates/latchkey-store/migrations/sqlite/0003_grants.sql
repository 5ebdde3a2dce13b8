-- Other grants (client credentials, RFC 8628 device authorization).
--
-- grant_type repeats settings.grant_type in a column of its own, so that connections_due can find the
-- client_credentials connections, which renew without a refresh token. Rows written before this migration can
-- only be authorization_code: earlier versions refused the other grants.
ALTER TABLE connections ADD COLUMN grant_type TEXT NOT NULL DEFAULT 'authorization_code'
    CHECK (grant_type IN ('authorization_code', 'client_credentials', 'device_code'));

-- A device authorization in progress, one per connection. device_code is sealed (AAD: device_flows,
-- device_code, connection id); the rest is what the person needs to approve it, and the poll schedule, so that
-- polling picks up where it was after a restart.
CREATE TABLE device_flows (
    connection_id             TEXT    NOT NULL PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    device_code               BLOB    NOT NULL,
    user_code                 TEXT    NOT NULL,
    verification_uri          TEXT    NOT NULL,
    verification_uri_complete TEXT,
    expires_at                INTEGER NOT NULL,
    interval_secs             INTEGER NOT NULL CHECK (interval_secs > 0),
    next_poll_at              INTEGER NOT NULL,
    created_at                INTEGER NOT NULL
) STRICT;

CREATE INDEX device_flows_by_next_poll ON device_flows (next_poll_at);
