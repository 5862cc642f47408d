-- Where each source stands: for IMAP, the folder's UIDVALIDITY and the last
-- UID whose message is committed. Advanced in the same transaction as the
-- tickets and comments it produced.
CREATE TABLE source_checkpoints (
    source     TEXT PRIMARY KEY,
    validity   INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
