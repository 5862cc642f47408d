-- The thread each ticket has in the agents' Discord channel.
CREATE TABLE chat_threads (
    platform   TEXT NOT NULL,
    thread_id  INTEGER NOT NULL,
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (platform, thread_id)
) STRICT;
CREATE UNIQUE INDEX chat_threads_ticket ON chat_threads(platform, ticket_id);
