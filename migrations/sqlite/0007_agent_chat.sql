-- Agents' commands from the chat desk are journaled with the outcome 'command'.
CREATE TABLE ingest_journal_new (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    source_key   TEXT NOT NULL,
    message_id   TEXT,
    content_hash TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('created', 'comment', 'command', 'duplicate', 'auto_generated', 'rejected', 'quarantined')),
    reason       TEXT,
    ticket_id    INTEGER REFERENCES tickets(id),
    comment_id   INTEGER REFERENCES comments(id),
    created_at   INTEGER NOT NULL
) STRICT;
INSERT INTO ingest_journal_new SELECT * FROM ingest_journal;
DROP TABLE ingest_journal;
ALTER TABLE ingest_journal_new RENAME TO ingest_journal;
CREATE INDEX ingest_journal_source ON ingest_journal(source, source_key);
