"""Tokens that must stop working before they expire, shared by every replica.

Two kinds of entry, each kept only as long as it can matter:

* a token id (``jti``) signed out by ``POST /api/auth/logout``, until the
  token's own expiry;
* a user id with a moment: every token of that user issued at or before it
  is refused (an admin kick, a disabled or deleted account), for
  ``COLLAB_JWT_TTL_S`` plus a margin, after which every such token has
  expired anyway (a refresh needs a token that is still accepted).

With ``COLLAB_REDIS_URL`` set the entries are Redis keys with that expiry
(``<prefix>:signout:{<user id>}:t:<jti>``, ``<prefix>:signout:{<user id>}:u``:
one hash slot per user, so one ``MGET`` reads both on a Redis Cluster too), so
a sign-out on one replica holds on all of them at once and survives restarts;
a Redis failure refuses the token check (``unavailable``, 503) rather than
letting a signed-out token through. Embedded, they live in this process.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod

from collab.auth import Claims, TokenDenylist
from collab.redis_client import RedisClientOptions, open_redis, redis_errors
from collab.settings import Settings

SIGNED_OUT = "this token was signed out"
ENDED = "this session was ended by an administrator; sign in again"
# Past a token's expiry the checks that refuse it are moot; 5 s is pyjwt's
# leeway in ``TokenCodec.verify``, the rest is clock skew between replicas.
MARGIN_S = 60.0


def refused_by_cutoff(claims: Claims, cutoff: float | None) -> bool:
    """A token is ended by a user cutoff when it was issued at or before it.
    ``iat`` has whole seconds, so a token issued in the same second as the
    cutoff (even just after it) is refused too."""
    return cutoff is not None and claims.issued_at <= cutoff


class SignOuts(ABC):
    def __init__(self, ttl_s: float) -> None:
        self.user_entry_s = ttl_s + MARGIN_S

    @abstractmethod
    async def sign_out(self, claims: Claims) -> None:
        """Refuse this token (its ``jti``) from now until it expires."""

    @abstractmethod
    async def end_user_sessions(self, user_id: str, at: float | None = None) -> None:
        """Refuse every token of ``user_id`` issued at or before ``at`` (now)."""

    @abstractmethod
    async def refusal(self, claims: Claims) -> str | None:
        """Why a verified token must be refused, or ``None``."""

    async def close(self) -> None:
        return None


class MemorySignOuts(SignOuts):
    """One process's entries (embedded mode), bounded like ``TokenDenylist``."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        super().__init__(ttl_s)
        self.tokens = TokenDenylist(max_entries)
        self.users = TokenDenylist(max_entries)  # user id -> keep-until
        self.cutoffs: dict[str, float] = {}

    async def sign_out(self, claims: Claims) -> None:
        self.tokens.add(claims.token_id, claims.expires_at + MARGIN_S)

    async def end_user_sessions(self, user_id: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self.users.add(user_id, at + self.user_entry_s)
        self.cutoffs = {k: v for k, v in self.cutoffs.items() if k in self.users.entries}
        self.cutoffs[user_id] = max(at, self.cutoffs.get(user_id, 0.0))

    async def refusal(self, claims: Claims) -> str | None:
        now = time.time()
        if claims.token_id in self.tokens and self.tokens.entries[claims.token_id] > now:
            return SIGNED_OUT
        user = claims.user.id
        live = user in self.users and self.users.entries[user] > now
        if live and refused_by_cutoff(claims, self.cutoffs.get(user)):
            return ENDED
        return None


class RedisSignOuts(SignOuts):
    """Entries as Redis keys expiring with what they refuse."""

    def __init__(self, url: str, prefix: str, ttl_s: float, options: RedisClientOptions) -> None:
        super().__init__(ttl_s)
        self.redis = open_redis(url, options, client_name="collab-signouts")
        self.prefix = prefix

    def token_key(self, user_id: str, token_id: str) -> str:
        return f"{self.prefix}:signout:{{{user_id}}}:t:{token_id}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}:signout:{{{user_id}}}:u"

    async def sign_out(self, claims: Claims) -> None:
        keep = math.ceil(claims.expires_at + MARGIN_S - time.time())
        if not claims.token_id or keep <= 0:
            return
        with redis_errors("sign-out list"):
            await self.redis.set(self.token_key(claims.user.id, claims.token_id), "1", ex=keep)

    async def end_user_sessions(self, user_id: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        key = self.user_key(user_id)
        with redis_errors("sign-out list"):
            # The later cutoff wins; the key lives as long as tokens before it can.
            await self.redis.eval(_RAISE_CUTOFF, 1, key, repr(at), math.ceil(self.user_entry_s))

    async def refusal(self, claims: Claims) -> str | None:
        with redis_errors("sign-out list"):
            token, cutoff = await self.redis.mget(
                self.token_key(claims.user.id, claims.token_id or "-"),
                self.user_key(claims.user.id),
            )
        if token is not None and claims.token_id:
            return SIGNED_OUT
        if refused_by_cutoff(claims, float(cutoff) if cutoff is not None else None):
            return ENDED
        return None

    async def close(self) -> None:
        await self.redis.aclose()


_RAISE_CUTOFF = """
local old = redis.call('GET', KEYS[1])
if (not old) or tonumber(old) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def make_signouts(settings: Settings) -> SignOuts:
    if settings.redis_url:
        return RedisSignOuts(
            settings.redis_url,
            settings.redis_prefix,
            settings.jwt_ttl_s,
            RedisClientOptions.from_settings(settings),
        )
    return MemorySignOuts(settings.jwt_ttl_s)
