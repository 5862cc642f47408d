-- Round-robin assignment: the agent each team's last pick went to.
CREATE TABLE team_rotation (
    team_id       BIGINT PRIMARY KEY REFERENCES teams(id),
    last_agent_id BIGINT NOT NULL REFERENCES agents(id)
);

-- Ticket views look up a requester's address by contact.
CREATE INDEX contact_identities_contact ON contact_identities(contact_id);
