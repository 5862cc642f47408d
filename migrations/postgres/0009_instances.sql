-- Several ticketd instances on one database: who works which source.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    -- Epoch seconds by the database's clock (never an instance's).
    expires_at BIGINT NOT NULL
);
-- The running instances, their rule sets and their clocks, for warnings.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    rules_digest TEXT NOT NULL,
    clock_offset BIGINT NOT NULL,
    seen_at      BIGINT NOT NULL
);
