-- A bound on each user's outbox: while a user has 1000 events not yet delivered (their receiver is down or
-- hangs), the triggers queue no further events of that user. Refusing the newest (rather than dropping the
-- oldest) keeps each trigger one guarded INSERT that never touches a row another replica is delivering, and what
-- the receiver gets stays an unbroken prefix of the changes, in order; docs/decisions.md says more.
DROP TRIGGER webhook_outbox_status_changed;
DROP TRIGGER webhook_outbox_deleted;

CREATE TRIGGER webhook_outbox_status_changed
AFTER UPDATE OF status ON connections
WHEN OLD.status IS NOT NEW.status AND EXISTS (SELECT 1 FROM webhooks WHERE user_id = NEW.user_id)
    AND (SELECT count(*) FROM webhook_outbox WHERE user_id = NEW.user_id AND state = 'pending') < 1000
BEGIN
    INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                occurred_at, next_attempt_at)
    VALUES (NEW.user_id, 'connection.status_changed', NEW.id, NEW.handle, NEW.status, OLD.status, NEW.last_error,
            NEW.updated_at, 0);
END;

CREATE TRIGGER webhook_outbox_deleted
AFTER DELETE ON connections
WHEN EXISTS (SELECT 1 FROM webhooks WHERE user_id = OLD.user_id)
    AND (SELECT count(*) FROM webhook_outbox WHERE user_id = OLD.user_id AND state = 'pending') < 1000
BEGIN
    INSERT INTO webhook_outbox (user_id, kind, connection_id, handle, status, previous_status, message,
                                occurred_at, next_attempt_at)
    VALUES (OLD.user_id, 'connection.deleted', OLD.id, OLD.handle, NULL, OLD.status, NULL,
            CAST(strftime('%s', 'now') AS INTEGER), 0);
END;
