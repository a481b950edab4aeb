"""Passwords (argon2id, memory-hard) and JWTs (pyjwt, HMAC only).

Tokens carry ``sub`` (user id), ``name``, ``role``, ``iss``, ``aud``, ``iat``,
``nbf``, ``exp``, ``jti``, ``auth_time`` (when the password was last given, so
refresh chains end after ``COLLAB_SESSION_MAX_AGE_S``) and, for accounts,
``pwv`` (a keyed fingerprint of the password hash, so changing the password
ends every other session on every replica). Verification pins the algorithm
to the configured HMAC one, so ``alg: none`` and HS/RS confusion tokens are
refused, and checks issuer, audience, expiry and not-before.

The server hashes only through ``HashPool``, which keeps argon2 off the
event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from collab.errors import RateLimited, TokenExpired, Unauthorized
from collab.settings import Settings
from collab.types import ROLES, Role, User

T = TypeVar("T")
_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
_DUMMY_HASH = _hasher.hash("collab-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time: an unknown user still costs one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


# argon2 off the event loop. One argon2id hash costs tens of milliseconds of
# CPU on purpose; run on the event loop, sixteen anonymous sign-ups froze every
# socket of a replica for seconds, long enough for write tokens to expire.
# argon2-cffi releases the GIL while it hashes, so worker threads leave the
# loop free. Bounded twice: COLLAB_HASH_WORKERS threads and at most
# COLLAB_HASH_QUEUE_MAX more requests waiting; beyond that a request is refused
# at once (429) rather than queueing without bound (the per-address and global
# budgets in api.py normally refuse long before that).
class HashPool:
    def __init__(self, workers: int, queue_max: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collab-hash")
        self._limit = workers + queue_max
        self._pending = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        return self._pending

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self._limit:
            self.refused += 1
            raise RateLimited("the server is busy; try again shortly", retry_after_s=1.0)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        # Looked up at call time so tests can observe which thread hashes.
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Claims:
    user: User
    expires_at: float  # unix seconds
    token_id: str
    auth_time: float = 0.0  # unix seconds of the password sign-in (0: unknown)
    password_version: str = ""  # "pwv"; empty for guests and older tokens
    issued_at: float = 0.0  # "iat", unix seconds: what a user-wide sign-out compares


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        if not settings.jwt_secret:
            raise ValueError("COLLAB_JWT_SECRET is not set")
        self._key = settings.jwt_secret
        self._alg = settings.jwt_algorithm
        self._iss = settings.jwt_issuer
        self._aud = settings.jwt_audience
        self._ttl = settings.jwt_ttl_s
        self._max_age = settings.session_max_age_s

    def password_version(self, password_hash: str | None) -> str:
        """A short keyed fingerprint of the stored hash: it changes when the
        password does and reveals nothing about it."""
        if not password_hash:
            return ""
        mac = hmac.new(self._key.encode(), password_hash.encode(), hashlib.sha256)
        return mac.hexdigest()[:16]

    def session_expired(self, claims: Claims, now: float | None = None) -> bool:
        """True once the sign-in behind ``claims`` is older than the absolute
        session lifetime (a refresh chain may not outlive it)."""
        now = time.time() if now is None else now
        started = claims.auth_time or (claims.expires_at - self._ttl)
        return now - started > self._max_age

    def issue(
        self,
        user: User,
        now: float | None = None,
        *,
        auth_time: float | None = None,
        password_version: str = "",
    ) -> tuple[str, float]:
        """A signed token for ``user`` and its expiry (unix seconds). A refresh
        passes the original ``auth_time``; a sign-in leaves it to ``now``.
        The expiry is not cut to the session's end: a client that renews ahead
        of expiry would then renew in a tight loop near the end. Instead
        ``session_expired`` refuses the token, wherever it is presented, once
        the session is over."""
        now = time.time() if now is None else now
        started = now if auth_time is None else auth_time
        exp = now + self._ttl
        claims = {
            "sub": user.id,
            "name": user.name,
            "role": user.role,
            "iss": self._iss,
            "aud": self._aud,
            "iat": int(now),
            "nbf": int(now) - 1,
            "exp": int(exp),
            "jti": uuid.uuid4().hex,
            "auth_time": int(started),
        }
        if password_version:
            claims["pwv"] = password_version
        return jwt.encode(claims, self._key, algorithm=self._alg), float(int(exp))

    def verify(self, token: str) -> Claims:
        """Raise ``TokenExpired`` for an expired token, ``Unauthorized`` for
        anything else that is wrong (bad signature, algorithm, claims)."""
        try:
            data = jwt.decode(
                token,
                self._key,
                algorithms=[self._alg],
                audience=self._aud,
                issuer=self._iss,
                options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token") from None
        role = data.get("role")
        sub, name = data.get("sub"), data.get("name")
        if role not in ROLES or not isinstance(sub, str) or not isinstance(name, str):
            raise Unauthorized("invalid token")
        user_role: Role = role
        auth_time, pwv = data.get("auth_time", 0), data.get("pwv", "")
        if not isinstance(auth_time, int | float) or not isinstance(pwv, str):
            raise Unauthorized("invalid token")
        issued = data.get("iat")
        if not isinstance(issued, int | float):
            raise Unauthorized("invalid token")
        return Claims(
            User(sub, name, user_role), float(data["exp"]), str(data.get("jti", "")),
            float(auth_time), pwv, float(issued),
        )  # fmt: skip


@dataclass
class LoginThrottle:
    """Brute-force brake: after ``max_failures`` failed logins for one key
    (an account, an address, or both), further attempts are refused for
    ``lockout_s``. Each lockout of a key that follows another within
    ``max_lockout_s`` lasts ``growth`` times longer, up to ``max_lockout_s``;
    a quiet spell that long, or a success, starts over. Lockouts are
    temporary by design, so an attacker cannot lock the real user out for
    good. In-process state (per replica): bounded to ``max_keys`` entries."""

    max_failures: int
    lockout_s: float
    growth: float = 1.0
    max_lockout_s: float = 0.0  # 0: lockout_s
    max_keys: int = 100_000
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    # key -> (lockouts in a row, when the last one started)
    levels: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def _cap(self) -> float:
        return max(self.lockout_s, self.max_lockout_s)

    def _length(self, key: str) -> float:
        level = self.levels.get(key, (1, 0.0))[0]
        return min(self._cap, self.lockout_s * self.growth ** max(0, level - 1))

    def retry_after(self, key: str, now: float) -> float:
        """Seconds ``key`` stays braked (0 when it is not)."""
        count, since = self.failures.get(key, (0, now))
        if count < self.max_failures:
            return 0.0
        return max(0.0, self._length(key) - (now - since))

    def check(self, keys: list[str], now: float) -> None:
        for key in keys:
            left = self.retry_after(key, now)
            if left > 0:
                raise RateLimited(
                    "too many failed logins; try again later", retry_after_s=round(left, 1)
                )

    def failed(self, keys: list[str], now: float) -> None:
        if len(self.failures) >= self.max_keys:
            self._forget(now)
        for key in keys:
            count, since = self.failures.get(key, (0, now))
            window = self._length(key) if count >= self.max_failures else self.lockout_s
            if now - since >= window:
                count, since = 0, now
            count += 1
            if count >= self.max_failures:
                since = now
                level, last = self.levels.get(key, (0, now))
                if now - last > self._cap + self.lockout_s:
                    level = 0
                self.levels[key] = (level + 1, now)
            self.failures[key] = (count, since)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)
            self.levels.pop(key, None)

    def _forget(self, now: float) -> None:
        horizon = self._cap + self.lockout_s
        self.failures = {k: v for k, v in self.failures.items() if now - v[1] < horizon}
        self.levels = {k: v for k, v in self.levels.items() if now - v[1] < horizon}
        if len(self.failures) >= self.max_keys:
            # Everyone is recent: keep the newest half rather than grow without bound.
            newest = sorted(self.failures, key=lambda k: self.failures[k][1])
            for key in newest[: len(newest) // 2]:
                del self.failures[key]


@dataclass
class TokenDenylist:
    """Token ids signed out before their expiry, each kept until it expires.
    In-process (per replica); bounded to ``max_entries`` (the oldest-expiring
    entries go first when full, which only shortens their revocation)."""

    max_entries: int = 100_000
    entries: dict[str, float] = field(default_factory=dict)

    def add(self, token_id: str, expires_at: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not token_id or expires_at <= now:
            return
        if len(self.entries) >= self.max_entries:
            self.entries = {k: v for k, v in self.entries.items() if v > now}
            if len(self.entries) >= self.max_entries:
                for key in sorted(self.entries, key=self.entries.__getitem__)[
                    : len(self.entries) // 2
                ]:
                    del self.entries[key]
        self.entries[token_id] = expires_at

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, str) and token_id in self.entries
