-- Webhook notifications: one webhook per user and an outbox of events waiting to be delivered.
--
-- The signing secret is sealed (AAD: webhooks, secret, user id). Events are written by triggers on connections,
-- inside the very statement that changes a status or deletes a connection, so an event is never lost between
-- the change and its queueing, whichever code path made the change. Only users with a webhook get events.
CREATE TABLE webhooks (
    user_id    TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT    NOT NULL,
    secret     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- A new event is due at once (next_attempt_at 0); a failed attempt moves next_attempt_at on.
-- state: 'pending' (waiting for its next attempt), 'delivered' or 'failed' (gave up after the last attempt).
-- A replica claims a pending event by setting lease_owner and lease_until; an expired lease frees it again.
CREATE TABLE webhook_outbox (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('connection.status_changed', 'connection.deleted')),
    connection_id   TEXT    NOT NULL,
    handle          TEXT    NOT NULL,
    status          TEXT,
    previous_status TEXT,
    message         TEXT,
    occurred_at     INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    finished_at     INTEGER
) STRICT;

CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_user ON webhook_outbox (user_id, id);

CREATE TRIGGER webhook_outbox_status_changed
AFTER UPDATE OF status ON connections
WHEN OLD.status IS NOT NEW.status AND EXISTS (SELECT 1 FROM webhooks WHERE user_id = NEW.user_id)
BEGIN
    INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                occurred_at, next_attempt_at)
    VALUES (NEW.user_id, 'connection.status_changed', NEW.id, NEW.handle, NEW.status, OLD.status, NEW.last_error,
            NEW.updated_at, 0);
END;

CREATE TRIGGER webhook_outbox_deleted
AFTER DELETE ON connections
WHEN EXISTS (SELECT 1 FROM webhooks WHERE user_id = OLD.user_id)
BEGIN
    INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                occurred_at, next_attempt_at)
    VALUES (OLD.user_id, 'connection.deleted', OLD.id, OLD.handle, NULL, OLD.status, NULL,
            CAST(strftime('%s', 'now') AS INTEGER), 0);
END;
