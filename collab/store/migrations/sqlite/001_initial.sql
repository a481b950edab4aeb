-- collab schema, SQLite twin of migrations/postgres/001_initial.sql (same
-- tables, columns, keys and checks). Timestamps are ISO 8601 UTC text with a
-- fixed-width microsecond part ("...T12:00:00.000000Z"), so text order is time
-- order; the server writes them (rows.utc_now).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    content    TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
    version    INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
    fence      INTEGER NOT NULL DEFAULT 0 CHECK (fence >= 0),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX notes_owner_idx ON notes (owner_id);
CREATE INDEX notes_updated_idx ON notes (updated_at DESC, id);

CREATE TABLE note_access (
    note_id TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access  TEXT NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (note_id, user_id)
);
CREATE INDEX note_access_user_idx ON note_access (user_id);

CREATE TABLE edits (
    note_id      TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    op           TEXT NOT NULL,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    payload_hash TEXT NOT NULL,
    by_id        TEXT NOT NULL,
    by_name      TEXT NOT NULL,
    by_role      TEXT NOT NULL,
    at           TEXT NOT NULL,
    PRIMARY KEY (note_id, version),
    UNIQUE (note_id, op)
);

CREATE TABLE revisions (
    note_id    TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    title      TEXT NOT NULL,
    content    TEXT NOT NULL,
    by_id      TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (note_id, version)
);

CREATE TABLE lock_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    note_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    session TEXT NOT NULL,
    user_id TEXT NOT NULL,
    fence   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX lock_events_note_idx ON lock_events (note_id, id);
