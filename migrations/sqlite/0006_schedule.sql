-- Reports: when a ticket was resolved (or closed without being resolved);
-- cleared when it is reopened.
ALTER TABLE tickets ADD COLUMN resolved_at INTEGER;
UPDATE tickets SET resolved_at = COALESCE(closed_at, updated_at)
    WHERE status IN ('resolved', 'closed');
CREATE INDEX tickets_created ON tickets(created_at);
CREATE INDEX tickets_resolved ON tickets(resolved_at);

-- Scheduled rules: one row per rule and cron slot, inserted in the
-- transaction that carries the run out, so each slot runs exactly once.
CREATE TABLE schedule_runs (
    rule     TEXT NOT NULL,
    slot     INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    tickets  INTEGER NOT NULL,
    PRIMARY KEY (rule, slot)
) STRICT;
