-- Webhook notifications: one webhook per user and an outbox of events waiting to be delivered (the same tables
-- as migrations/sqlite/0006_webhooks.sql).
--
-- The signing secret is sealed (AAD: webhooks, secret, user id). Events are written by triggers on connections,
-- inside the very statement that changes a status or deletes a connection, so an event is never lost between
-- the change and its queueing, whichever code path or replica made the change. Only users with a webhook get
-- events.
CREATE TABLE webhooks (
    user_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT             NOT NULL,
    secret     BYTEA            NOT NULL,
    created_at BIGINT           NOT NULL,
    updated_at BIGINT           NOT NULL
);

-- A new event is due at once (next_attempt_at 0); a failed attempt moves next_attempt_at on.
-- state: 'pending' (waiting for its next attempt), 'delivered' or 'failed' (gave up after the last attempt).
-- A replica claims pending events with FOR UPDATE SKIP LOCKED and a lease; an expired lease frees them again.
CREATE TABLE webhook_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         TEXT COLLATE "C" NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('connection.status_changed', 'connection.deleted')),
    connection_id   TEXT COLLATE "C" NOT NULL,
    handle          TEXT COLLATE "C" NOT NULL,
    status          TEXT,
    previous_status TEXT,
    message         TEXT,
    occurred_at     BIGINT  NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    finished_at     BIGINT
);

CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_user ON webhook_outbox (user_id, id);

CREATE FUNCTION webhook_outbox_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM webhooks WHERE user_id = OLD.user_id) THEN
            INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                        occurred_at, next_attempt_at)
            VALUES (OLD.user_id, 'connection.deleted', OLD.id, OLD.handle, NULL, OLD.status, NULL,
                    extract(epoch FROM now())::bigint, 0);
        END IF;
        RETURN OLD;
    END IF;
    IF EXISTS (SELECT 1 FROM webhooks WHERE user_id = NEW.user_id) THEN
        INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                    occurred_at, next_attempt_at)
        VALUES (NEW.user_id, 'connection.status_changed', NEW.id, NEW.handle, NEW.status, OLD.status,
                NEW.last_error, NEW.updated_at, 0);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER webhook_outbox_status_changed
AFTER UPDATE OF status ON connections
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION webhook_outbox_queue();

CREATE TRIGGER webhook_outbox_deleted
AFTER DELETE ON connections
FOR EACH ROW EXECUTE FUNCTION webhook_outbox_queue();
