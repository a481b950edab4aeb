-- Accounts an admin disabled (NULL: enabled): no sign-in, no token accepted.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
-- What each account owns, kept in step with its notes by every write of a
-- note's text, in the same transaction (store/quotas.py).
ALTER TABLE users ADD COLUMN note_count bigint NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN content_bytes bigint NOT NULL DEFAULT 0;
UPDATE users u SET note_count = s.n, content_bytes = s.b
FROM (SELECT owner_id, count(*) AS n, coalesce(sum(octet_length(content)), 0) AS b
      FROM notes GROUP BY owner_id) s
WHERE s.owner_id = u.id;
-- Op ids of edits whose payload the compactor dropped (store/retention.py):
-- kept longer than payloads, so a late retry is still recognised.
CREATE TABLE edit_ops (
    note_id      text NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    op           text NOT NULL,
    version      bigint NOT NULL,
    payload_hash text NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (note_id, op)
);
CREATE INDEX edit_ops_version_idx ON edit_ops (note_id, version);
CREATE INDEX edit_ops_at_idx ON edit_ops (at);
