-- The sources (lease names) each instance runs, one per line: leases move
-- toward the least busy instance that runs them.
ALTER TABLE instances ADD COLUMN sources TEXT NOT NULL DEFAULT '';
