-- A lease on each device flow, so that of several replicas exactly one polls it at a time: a poller takes it
-- (poll_owner, poll_lease_until) in a guarded UPDATE before asking the provider, and rescheduling the next poll
-- releases it. An expired lease (a replica that died mid-poll) is free again.
ALTER TABLE device_flows ADD COLUMN poll_owner TEXT;
ALTER TABLE device_flows ADD COLUMN poll_lease_until INTEGER NOT NULL DEFAULT 0;
