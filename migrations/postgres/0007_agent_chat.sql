-- Agents' commands from the chat desk are journaled with the outcome 'command'.
ALTER TABLE ingest_journal DROP CONSTRAINT ingest_journal_outcome_check;
ALTER TABLE ingest_journal ADD CONSTRAINT ingest_journal_outcome_check
    CHECK (outcome IN ('created', 'comment', 'command', 'duplicate', 'auto_generated', 'rejected', 'quarantined'));
