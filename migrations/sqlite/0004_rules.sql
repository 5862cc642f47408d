-- Round-robin assignment: the agent each team's last pick went to.
CREATE TABLE team_rotation (
    team_id       INTEGER PRIMARY KEY REFERENCES teams(id),
    last_agent_id INTEGER NOT NULL REFERENCES agents(id)
) STRICT;

-- Ticket views look up a requester's address by contact.
CREATE INDEX contact_identities_contact ON contact_identities(contact_id);
