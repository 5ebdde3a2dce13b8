-- A bound on each user's outbox (as migrations/sqlite/0008_webhook_outbox_bound.sql): while a user has 1000
-- events not yet delivered (their receiver is down or hangs), further events of that user are not queued.
CREATE OR REPLACE FUNCTION webhook_outbox_queue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        owner := OLD.user_id;
    ELSE
        owner := NEW.user_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE user_id = owner)
        OR (SELECT count(*) FROM webhook_outbox WHERE user_id = owner AND state = 'pending') >= 1000 THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                    occurred_at, next_attempt_at)
        VALUES (OLD.user_id, 'connection.deleted', OLD.id, OLD.handle, NULL, OLD.status, NULL,
                extract(epoch FROM now())::bigint, 0);
        RETURN OLD;
    END IF;
    INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                occurred_at, next_attempt_at)
    VALUES (NEW.user_id, 'connection.status_changed', NEW.id, NEW.handle, NEW.status, OLD.status,
            NEW.last_error, NEW.updated_at, 0);
    RETURN NEW;
END;
$$;
