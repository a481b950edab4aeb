-- collab schema, PostgreSQL. Ids are uuid4 hex made by the server; the twin for
-- SQLite is migrations/sqlite/001_initial.sql and must keep the same semantics.

CREATE TABLE users (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    -- casefolded name, computed by the server (rows.name_key): unique
    -- case-insensitively, identically on both backends.
    name_key      text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'user')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notes (
    id         text PRIMARY KEY,
    owner_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text NOT NULL,
    content    text NOT NULL,
    visibility text NOT NULL CHECK (visibility IN ('private', 'public')),
    version    bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    -- the write token's fencing number: only ever raised (rule 1), compared
    -- with equality on every edit (rule 2).
    fence      bigint NOT NULL DEFAULT 0 CHECK (fence >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_owner_idx ON notes (owner_id);
CREATE INDEX notes_updated_idx ON notes (updated_at DESC, id);

CREATE TABLE note_access (
    note_id text NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access  text NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (note_id, user_id)
);
CREATE INDEX note_access_user_idx ON note_access (user_id);

-- The edit log. by_* are copied, not referenced: guests are never stored.
CREATE TABLE edits (
    note_id      text NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version      bigint NOT NULL,
    op           text NOT NULL,
    payload      jsonb NOT NULL,
    payload_hash text NOT NULL,
    by_id        text NOT NULL,
    by_name      text NOT NULL,
    by_role      text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (note_id, version),
    UNIQUE (note_id, op)
);

CREATE TABLE revisions (
    note_id    text NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version    bigint NOT NULL,
    title      text NOT NULL,
    content    text NOT NULL,
    by_id      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (note_id, version)
);

-- Lock audit log; no foreign key so events about a just-deleted note can
-- still be recorded (delete_note removes a note's events explicitly).
CREATE TABLE lock_events (
    id      bigserial PRIMARY KEY,
    note_id text NOT NULL,
    kind    text NOT NULL,
    session text NOT NULL,
    user_id text NOT NULL,
    fence   bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX lock_events_note_idx ON lock_events (note_id, id);
