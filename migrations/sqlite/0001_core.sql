-- ticketd core schema (SQLite). Keep in step with ../postgres/0001_core.sql.
-- Times are Unix epoch seconds (UTC). Flags are 0/1 integers.

CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE organization_domains (
    domain          TEXT PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations(id)
) STRICT;

CREATE TABLE teams (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE agents (
    id     INTEGER PRIMARY KEY,
    email  TEXT NOT NULL UNIQUE,
    name   TEXT NOT NULL DEFAULT '',
    role   TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'agent', 'viewer')),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;

CREATE TABLE agent_teams (
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    team_id  INTEGER NOT NULL REFERENCES teams(id),
    PRIMARY KEY (agent_id, team_id)
) STRICT;

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    organization_id INTEGER REFERENCES organizations(id),
    language        TEXT,
    created_at      INTEGER NOT NULL
) STRICT;

-- Email addresses and chat accounts of contacts.
CREATE TABLE contact_identities (
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'telegram', 'discord')),
    address    TEXT NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    PRIMARY KEY (kind, address)
) STRICT;

CREATE TABLE ticket_sequences (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL
) STRICT;

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('new', 'open', 'pending', 'resolved', 'closed')),
    priority        TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    category        TEXT NOT NULL DEFAULT 'other',
    requester_id    INTEGER NOT NULL REFERENCES contacts(id),
    assignee_id     INTEGER REFERENCES agents(id),
    team_id         INTEGER REFERENCES teams(id),
    organization_id INTEGER REFERENCES organizations(id),
    channel         TEXT NOT NULL,
    language        TEXT,
    auto_generated  INTEGER NOT NULL DEFAULT 0 CHECK (auto_generated IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    closed_at       INTEGER
) STRICT;
CREATE INDEX tickets_status ON tickets(status, updated_at);

CREATE TABLE ticket_tags (
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    tag       TEXT NOT NULL,
    PRIMARY KEY (ticket_id, tag)
) STRICT;

CREATE TABLE ticket_links (
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    related_id INTEGER NOT NULL REFERENCES tickets(id),
    kind       TEXT NOT NULL CHECK (kind IN ('follow_up', 'stranger_reply')),
    PRIMARY KEY (ticket_id, related_id)
) STRICT;

-- Addresses seen on a ticket's mail: they may reply to it.
CREATE TABLE ticket_participants (
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    email     TEXT NOT NULL,
    PRIMARY KEY (ticket_id, email)
) STRICT;

CREATE TABLE comments (
    id             INTEGER PRIMARY KEY,
    ticket_id      INTEGER NOT NULL REFERENCES tickets(id),
    author         TEXT NOT NULL,
    author_kind    TEXT NOT NULL CHECK (author_kind IN ('requester', 'participant', 'agent', 'stranger', 'system')),
    body           TEXT NOT NULL,
    stripped       TEXT NOT NULL DEFAULT '',
    internal       INTEGER NOT NULL CHECK (internal IN (0, 1)),
    channel        TEXT NOT NULL,
    auto_generated INTEGER NOT NULL DEFAULT 0 CHECK (auto_generated IN (0, 1)),
    message_id     TEXT,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX comments_ticket ON comments(ticket_id, id);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    comment_id   INTEGER NOT NULL REFERENCES comments(id),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    -- 0 when the file was over the size limit and only recorded.
    stored       INTEGER NOT NULL CHECK (stored IN (0, 1)),
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_ticket ON attachments(ticket_id);

-- Every Message-ID seen (in) or sent (out), and content hashes of mail without one.
CREATE TABLE message_ids (
    message_id TEXT PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    comment_id INTEGER REFERENCES comments(id),
    direction  TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX message_ids_ticket ON message_ids(ticket_id);

CREATE TABLE ticket_history (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    actor      TEXT NOT NULL,
    field      TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT,
    rule       TEXT,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX ticket_history_ticket ON ticket_history(ticket_id, id);

-- One row per inbound message and attempt, with its outcome.
CREATE TABLE ingest_journal (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    source_key   TEXT NOT NULL,
    message_id   TEXT,
    content_hash TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('created', 'comment', 'duplicate', 'auto_generated', 'rejected', 'quarantined')),
    reason       TEXT,
    ticket_id    INTEGER REFERENCES tickets(id),
    comment_id   INTEGER REFERENCES comments(id),
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX ingest_journal_source ON ingest_journal(source, source_key);
