-- The transactional outbox: notifications written in the same transaction as
-- the change that caused them, delivered by the dispatcher.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER REFERENCES tickets(id),
    event           TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'telegram', 'discord', 'webhook')),
    recipient       TEXT NOT NULL,
    -- 1 for automatic mail (Auto-Submitted: auto-replied), 0 for a person's reply.
    automatic       INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    message_id      TEXT,
    in_reply_to     TEXT,
    refs            TEXT NOT NULL DEFAULT '',
    reply_to        TEXT,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    html            TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox(recipient, automatic, created_at);
