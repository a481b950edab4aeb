-- Timelines whose failover fence jump is done (docs/design.md, rule 10). The
-- timeline the database is on when this runs needs no jump: nothing failed over.
CREATE TABLE failover_fences (
    timeline   bigint PRIMARY KEY,
    fenced_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO failover_fences (timeline)
SELECT greatest(
    c.timeline_id,
    CASE WHEN pg_is_in_recovery() THEN 0
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
    END)
FROM pg_control_checkpoint() AS c;
