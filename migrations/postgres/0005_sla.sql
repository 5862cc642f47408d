-- SLA clocks: due times on the ticket, pending intervals, and one timer row
-- per ticket and threshold that is fired exactly once.
ALTER TABLE tickets ADD COLUMN first_response_at BIGINT;
ALTER TABLE tickets ADD COLUMN first_response_due BIGINT;
ALTER TABLE tickets ADD COLUMN resolution_due BIGINT;
ALTER TABLE tickets ADD COLUMN sla_paused_at BIGINT;

CREATE TABLE sla_pauses (
    ticket_id BIGINT NOT NULL REFERENCES tickets(id),
    from_at   BIGINT NOT NULL,
    to_at     BIGINT NOT NULL
);
CREATE INDEX sla_pauses_ticket ON sla_pauses(ticket_id);

CREATE TABLE sla_timers (
    ticket_id BIGINT NOT NULL REFERENCES tickets(id),
    kind      TEXT NOT NULL,
    due_at    BIGINT NOT NULL,
    fired_at  BIGINT,
    PRIMARY KEY (ticket_id, kind)
);
CREATE INDEX sla_timers_due ON sla_timers(fired_at, due_at);
