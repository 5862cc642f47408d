-- SLA clocks: due times on the ticket, pending intervals, and one timer row
-- per ticket and threshold that is fired exactly once.
ALTER TABLE tickets ADD COLUMN first_response_at INTEGER;
ALTER TABLE tickets ADD COLUMN first_response_due INTEGER;
ALTER TABLE tickets ADD COLUMN resolution_due INTEGER;
ALTER TABLE tickets ADD COLUMN sla_paused_at INTEGER;

CREATE TABLE sla_pauses (
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    from_at   INTEGER NOT NULL,
    to_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX sla_pauses_ticket ON sla_pauses(ticket_id);

CREATE TABLE sla_timers (
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    kind      TEXT NOT NULL,
    due_at    INTEGER NOT NULL,
    fired_at  INTEGER,
    PRIMARY KEY (ticket_id, kind)
) STRICT;
CREATE INDEX sla_timers_due ON sla_timers(fired_at, due_at);
