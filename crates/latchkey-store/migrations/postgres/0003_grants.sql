-- Other grants (client credentials, RFC 8628 device authorization).
--
-- grant_type repeats settings.grant_type in a column of its own, so that connections_due can find the
-- client_credentials connections, which renew without a refresh token. Rows written before this migration can
-- only be authorization_code: earlier versions refused the other grants.
ALTER TABLE connections ADD COLUMN grant_type TEXT NOT NULL DEFAULT 'authorization_code'
    CHECK (grant_type IN ('authorization_code', 'client_credentials', 'device_code'));

-- The partial index of the refresher's query, widened to the connections that renew without a refresh token.
DROP INDEX connections_due;
CREATE INDEX connections_due ON connections (refresh_at, id)
    WHERE (refresh_token IS NOT NULL OR grant_type = 'client_credentials') AND status IN ('connected', 'error');

-- A device authorization in progress, one per connection. device_code is sealed (AAD: device_flows,
-- device_code, connection id); the rest is what the person needs to approve it, and the poll schedule, so that
-- polling picks up where it was after a restart.
CREATE TABLE device_flows (
    connection_id             TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    device_code               BYTEA            NOT NULL,
    user_code                 TEXT             NOT NULL,
    verification_uri          TEXT             NOT NULL,
    verification_uri_complete TEXT,
    expires_at                BIGINT           NOT NULL,
    interval_secs             BIGINT           NOT NULL CHECK (interval_secs > 0),
    next_poll_at              BIGINT           NOT NULL,
    created_at                BIGINT           NOT NULL
);

CREATE INDEX device_flows_by_next_poll ON device_flows (next_poll_at);
