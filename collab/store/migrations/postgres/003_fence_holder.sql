-- The session the current fence was granted to (docs/design.md, rules 1-2): an
-- edit commits only under the current fence *and* from its holder, so nobody
-- can write by guessing the fence number. '' is nobody (never granted, revoked).
ALTER TABLE notes ADD COLUMN fence_holder text NOT NULL DEFAULT '';
