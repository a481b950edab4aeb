-- Timelines whose failover fence jump is done (docs/design.md, rule 10). SQLite
-- never fails over; the table keeps both schemas alike.
CREATE TABLE failover_fences (
    timeline   INTEGER PRIMARY KEY,
    fenced_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
