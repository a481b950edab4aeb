"""Passwords (argon2id, memory-hard) and JWTs (pyjwt, HMAC only).

Tokens carry ``sub`` (user id), ``name``, ``role``, ``iss``, ``aud``, ``iat``,
``nbf``, ``exp`` and ``jti``. Verification pins the algorithm to the configured
HMAC one, so ``alg: none`` and HS/RS confusion tokens are refused, and checks
issuer, audience, expiry and not-before.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from collab.errors import RateLimited, TokenExpired, Unauthorized
from collab.settings import Settings
from collab.types import ROLES, Role, User

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


@dataclass(frozen=True)
class Claims:
    user: User
    expires_at: float  # unix seconds
    token_id: str


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        if not settings.jwt_secret:
            raise ValueError("COLLAB_JWT_SECRET is not set")
        self._key = settings.jwt_secret
        self._alg = settings.jwt_algorithm
        self._iss = settings.jwt_issuer
        self._aud = settings.jwt_audience
        self._ttl = settings.jwt_ttl_s

    def issue(self, user: User, now: float | None = None) -> tuple[str, float]:
        """A signed token for ``user`` and its expiry (unix seconds)."""
        now = time.time() if now is None else now
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
        }
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
        return Claims(User(sub, name, user_role), float(data["exp"]), str(data.get("jti", "")))


def iso_from_unix(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LoginThrottle:
    """Brute-force brake: after ``max_failures`` failed logins for one account
    or from one IP, further attempts are refused for ``lockout_s``. The lockout
    is temporary by design, so an attacker cannot lock the real user out for
    good. In-process state (per replica): bounded to ``max_keys`` entries."""

    max_failures: int
    lockout_s: float
    max_keys: int = 100_000
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def check(self, keys: list[str], now: float) -> None:
        for key in keys:
            count, since = self.failures.get(key, (0, now))
            if count >= self.max_failures and now - since < self.lockout_s:
                raise RateLimited(
                    "too many failed logins; try again later",
                    retry_after_s=round(self.lockout_s - (now - since), 1),
                )

    def failed(self, keys: list[str], now: float) -> None:
        if len(self.failures) >= self.max_keys:
            self.failures = {k: v for k, v in self.failures.items() if now - v[1] < self.lockout_s}
        for key in keys:
            count, since = self.failures.get(key, (0, now))
            if now - since >= self.lockout_s:
                count, since = 0, now
            self.failures[key] = (count + 1, now if count + 1 >= self.max_failures else since)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)
