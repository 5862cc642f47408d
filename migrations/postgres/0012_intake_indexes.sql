-- least_open assignment counts each team member's open tickets.
CREATE INDEX tickets_assignee ON tickets(assignee_id, status);

-- The automatic-mail rate limit counts a recipient's recent automatic mail
-- by status: answered from the index alone.
DROP INDEX outbox_recipient;
CREATE INDEX outbox_recipient ON outbox(recipient, automatic, created_at, status);
