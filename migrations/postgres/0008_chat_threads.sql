-- The thread each ticket has in the agents' Discord channel.
CREATE TABLE chat_threads (
    platform   TEXT NOT NULL,
    thread_id  BIGINT NOT NULL,
    ticket_id  BIGINT NOT NULL REFERENCES tickets(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (platform, thread_id)
);
CREATE UNIQUE INDEX chat_threads_ticket ON chat_threads(platform, ticket_id);
