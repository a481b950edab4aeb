-- Accounts an admin disabled (NULL: enabled): no sign-in, no token accepted.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
-- What each account owns, kept in step with its notes by every write of a
-- note's text, in the same transaction (store/quotas.py).
ALTER TABLE users ADD COLUMN note_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN content_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
    note_count = (SELECT count(*) FROM notes WHERE owner_id = users.id),
    content_bytes = (SELECT coalesce(sum(length(CAST(content AS BLOB))), 0)
                     FROM notes WHERE owner_id = users.id);
-- Op ids of edits whose payload the compactor dropped (store/retention.py):
-- kept longer than payloads, so a late retry is still recognised.
CREATE TABLE edit_ops (
    note_id      TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    op           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    payload_hash TEXT NOT NULL,
    at           TEXT NOT NULL,
    PRIMARY KEY (note_id, op)
);
CREATE INDEX edit_ops_version_idx ON edit_ops (note_id, version);
CREATE INDEX edit_ops_at_idx ON edit_ops (at);
