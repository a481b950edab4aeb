"""The Lua scripts behind ``RedisLeaseStore``: one script per operation, so
every decision about a note's lease is a single atomic step in Redis.

All keys of a note carry the hash tag ``{note-id}`` (rule 11). The fixed keys
are passed in ``KEYS``; the per-waiter liveness keys ``<base>waiter:<session>``
are named inside the scripts from a prefix argument because the queue's members
are only known there. They share the note's hash tag, so they live in the same
Redis Cluster slot as the declared keys.

Times come from ``redis.call('TIME')`` (milliseconds), never from a replica's
clock: all replicas agree on lease deadlines and lock-delay ends.

Hashes used:
  holder: session, user (json), fence, since (ms), expires_ms
  last:   session, deadline (ms) -- the lease deadline of the latest owner,
          kept ``ttl + lock_delay`` past each grant/renew so an *expiry*, which
          no script observes, still leaves its lock-delay behind (rule 4).
Reply codes of ACQUIRE: 1 granted, 2 queued, 3 locked.
"""

from __future__ import annotations

GRANTED, QUEUED, LOCKED = 1, 2, 3

_PRELUDE = """
local function int(n) return string.format('%d', n) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The fence of the lease value 'user:session:fence' if ``session`` owns it.
local function owned_fence(value, session)
  if not value then return nil end
  local fence = string.match(value, ':(%d+)$')
  if not fence then return nil end
  local tail = ':' .. session .. ':' .. fence
  if #value > #tail and string.sub(value, -#tail) == tail then return tonumber(fence) end
  return nil
end

-- Drop waiters whose liveness key has expired (rule 6); return the live ones, FIFO.
local function live_queue(queue_key, waiter_prefix)
  local live = {}
  for _, s in ipairs(redis.call('ZRANGE', queue_key, 0, -1)) do
    if redis.call('EXISTS', waiter_prefix .. s) == 1 then
      live[#live + 1] = s
    else
      redis.call('ZREM', queue_key, s)
    end
  end
  return live
end

-- Milliseconds of lock-delay still applying to ``session`` (rule 4): none for
-- the previous owner, none once the old deadline + lock_delay has passed.
local function lock_delay_left(last_key, session, now, lock_delay)
  local last = redis.call('HMGET', last_key, 'session', 'deadline')
  if not last[1] or last[1] == session then return 0 end
  local left = tonumber(last[2]) + lock_delay - now
  if left > 0 then return left end
  return 0
end

local function remember_deadline(last_key, session, deadline, keep_ms)
  redis.call('DEL', last_key)
  redis.call('HSET', last_key, 'session', session, 'deadline', int(deadline))
  redis.call('PEXPIRE', last_key, keep_ms)
end
"""

# KEYS: lease fence holder last queue qseq
# ARGV: session user_id user_json ttl_ms lock_delay_ms wait(0|1) waiter_prefix
ACQUIRE = (
    _PRELUDE
    + """
local session, user_id, user_json = ARGV[1], ARGV[2], ARGV[3]
local ttl, lock_delay = tonumber(ARGV[4]), tonumber(ARGV[5])
local wait, waiter_prefix = ARGV[6] == '1', ARGV[7]

local value = redis.call('GET', KEYS[1])
local mine = owned_fence(value, session)
if mine then return {1, mine, 0, 1} end

local now = now_ms()
local live = live_queue(KEYS[5], waiter_prefix)
local head_ok = #live == 0 or live[1] == session
if not value and head_ok and lock_delay_left(KEYS[4], session, now, lock_delay) == 0 then
  -- Rule 1: INCR the fence and SET the lease NX PX ttl in the same script.
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], user_id .. ':' .. session .. ':' .. fence, 'NX', 'PX', ttl)
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'session', session, 'user', user_json, 'fence', fence,
             'since', int(now), 'expires_ms', int(now + ttl))
  redis.call('PEXPIRE', KEYS[3], ttl)
  remember_deadline(KEYS[4], session, now + ttl, ttl + lock_delay)
  redis.call('ZREM', KEYS[5], session)
  redis.call('DEL', waiter_prefix .. session)
  return {1, fence, 0, 0}
end

if wait then
  -- FIFO by arrival; a session already queued keeps its place (rule 6).
  if not redis.call('ZSCORE', KEYS[5], session) then
    redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[6]), session)
  end
  redis.call('SET', waiter_prefix .. session, user_json, 'PX', ttl)
  return {2, 0, redis.call('ZRANK', KEYS[5], session) + 1, 0}
end
return {3, 0, 0, 0}
"""
)

# KEYS: lease holder last   ARGV: session fence ttl_ms lock_delay_ms
RENEW = (
    _PRELUDE
    + """
local mine = owned_fence(redis.call('GET', KEYS[1]), ARGV[1])
if not mine or mine ~= tonumber(ARGV[2]) then return 0 end
local now, ttl = now_ms(), tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[2], 'expires_ms', int(now + ttl))
redis.call('PEXPIRE', KEYS[2], ttl)
remember_deadline(KEYS[3], ARGV[1], now + ttl, ttl + tonumber(ARGV[4]))
return 1
"""
)

# KEYS: lease holder last queue waiter   ARGV: session fence
# A clean end (release, or drop of a grant PostgreSQL refused): deleting
# ``last`` means no lock-delay follows (rule 4). The session also leaves the queue.
RELEASE = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5])
local mine = owned_fence(redis.call('GET', KEYS[1]), ARGV[1])
if not mine or mine ~= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""
)

# KEYS: lease holder last queue waiter   ARGV: session fence user_json ttl_ms
# A grant that did not count (the database refused or failed it) goes back
# without losing the waiter its place: the lease is deleted if still ours, no
# lock-delay is left behind, and the session goes back to the head of the
# queue with a fresh liveness key (rule 6: FIFO survives a failed grant).
GIVE_BACK = (
    _PRELUDE
    + """
local mine = owned_fence(redis.call('GET', KEYS[1]), ARGV[1])
if mine and mine == tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
end
local head = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local score = 0
if head[2] then score = tonumber(head[2]) - 1 end
if head[1] ~= ARGV[1] then
  redis.call('ZADD', KEYS[4], score, ARGV[1])
end
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
return 1
"""
)

# KEYS: last   ARGV: pause_ms lock_delay_ms
# The note's counter was found behind the database (Redis lost it, rule 8):
# no grant for anyone for ``pause_ms``, on every replica, so holders whose
# leases vanished are not overtaken before they notice. Stored as a lock-delay
# of a session id no client can have.
HOLD_BACK = (
    _PRELUDE
    + """
local now = now_ms()
local pause, lock_delay = tonumber(ARGV[1]), tonumber(ARGV[2])
remember_deadline(KEYS[1], '~reset', now + pause - lock_delay, pause)
return 1
"""
)

# KEYS: lease fence holder last queue qseq   ARGV: waiter_prefix
# The note was deleted: none of its keys may outlive it (bounded Redis memory).
FORGET_NOTE = """
for _, s in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  redis.call('DEL', ARGV[1] .. s)
end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
"""

# KEYS: timeline   ARGV: seen
# The highest database timeline any replica has seen, shared so that a replica
# started after a failover refuses an old primary before its first write (rule 10).
RECORD_TIMELINE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1])
if seen > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return seen
end
return current
"""

# KEYS: queue waiter   ARGV: session
LEAVE_QUEUE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return removed
"""

# KEYS: queue waiter   ARGV: session ttl_ms waiter_prefix
# A waiter whose liveness key already expired is dead: it is removed rather
# than revived, and must queue again at the back.
RENEW_WAITER = (
    _PRELUDE
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('PEXPIRE', KEYS[2], ARGV[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
live_queue(KEYS[1], ARGV[3])
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""
)

# KEYS: lease fence holder last   ARGV: lock_delay_ms
# The lock-delay of a revoke starts now: the new fence, once advanced in
# PostgreSQL, is what shuts the old holder out (rule 5), so there is no need to
# wait out its old lease as after an expiry.
REVOKE = (
    _PRELUDE
    + """
local fence = redis.call('INCR', KEYS[2])
local value = redis.call('GET', KEYS[1])
if value then
  local session = redis.call('HGET', KEYS[3], 'session') or string.match(value, ':([^:]*):%d+$')
  redis.call('DEL', KEYS[1], KEYS[3])
  local delay = tonumber(ARGV[1])
  if delay > 0 then
    remember_deadline(KEYS[4], session, now_ms(), delay)
  else
    redis.call('DEL', KEYS[4])
  end
end
return fence
"""
)

# KEYS: fence   ARGV: at_least
RAISE_FENCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return wanted
end
return current
"""

# KEYS: lease holder queue   ARGV: waiter_prefix
# Reply: lease value ('' if none), PTTL, holder session, user, since,
# then (session, user json) per live waiter.
VIEW = (
    _PRELUDE
    + """
local value = redis.call('GET', KEYS[1])
local live = live_queue(KEYS[3], ARGV[1])
local out = {value or '', redis.call('PTTL', KEYS[1])}
local holder = redis.call('HMGET', KEYS[2], 'session', 'user', 'since')
for i = 1, 3 do out[#out + 1] = holder[i] or '' end
for _, s in ipairs(live) do
  out[#out + 1] = s
  out[#out + 1] = redis.call('GET', ARGV[1] .. s) or ''
end
return out
"""
)

# KEYS: lease last   ARGV: session lock_delay_ms
GRANTABLE_IN = (
    _PRELUDE
    + """
local value = redis.call('GET', KEYS[1])
if owned_fence(value, ARGV[1]) then return 0 end
local wait = lock_delay_left(KEYS[2], ARGV[1], now_ms(), tonumber(ARGV[2]))
if value then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > wait then wait = pttl end
end
return wait
"""
)
