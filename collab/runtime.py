"""What one app instance owns, handed to the edges (the socket shell and the
HTTP routes): settings, store, hub, metrics, the token codec, the abuse
brakes and the set of live connections. Built by ``app.py``'s lifespan."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Protocol

from starlette.requests import HTTPConnection

from collab import frames
from collab.admission import AddressSlots, UserSlots, make_socket_admission
from collab.auth import Claims, HashPool, LoginThrottle, TokenCodec
from collab.errors import RateLimited, Unauthorized
from collab.hub import Hub
from collab.metrics import Metrics
from collab.protocol import AuthBudgets, KeyedBuckets, client_address, origin_allowed
from collab.settings import Settings
from collab.signouts import make_signouts
from collab.store.base import Store
from collab.types import User


class LiveSocket(Protocol):
    """A live connection as the runtime counts it."""

    @property
    def user(self) -> User: ...


class ConnectionSet:
    """The live connections, also indexed by user id, so finding a user's
    sockets is no scan of all of them (docs/benchmarks.md, capacity). A
    connection's user id never changes (a role change keeps the id). The
    per-user socket limit is not counted here but by ``user_slots``, across
    replicas."""

    def __init__(self) -> None:
        self._all: set[LiveSocket] = set()
        self._by_user: dict[str, set[LiveSocket]] = {}

    def add(self, conn: LiveSocket) -> None:
        self._all.add(conn)
        self._by_user.setdefault(conn.user.id, set()).add(conn)

    def discard(self, conn: LiveSocket) -> None:
        self._all.discard(conn)
        mine = self._by_user.get(conn.user.id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._by_user[conn.user.id]

    def of_user(self, user_id: str) -> list[LiveSocket]:
        return list(self._by_user.get(user_id, ()))

    def __iter__(self) -> Iterator[LiveSocket]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, conn: object) -> bool:
        return conn in self._all


class Runtime:
    """Everything one app instance owns."""

    def __init__(self, settings: Settings, store: Store, hub: Hub, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.registry = hub.registry
        self.metrics = metrics
        self.codec = TokenCodec(settings)
        # Brute-force brakes. The tight one is per (account, address), so a
        # stranger's guesses do not lock the owner out; the per-account one
        # trips only far higher (a distributed guesser) and then grows; the
        # per-address one stops spraying across accounts.
        lockout, cap = settings.login_lockout_s, settings.login_max_lockout_s
        self.pair_throttle = LoginThrottle(settings.login_max_failures, lockout)
        self.account_throttle = LoginThrottle(
            settings.login_max_failures_per_account, lockout, growth=2.0, max_lockout_s=cap
        )
        self.ip_throttle = LoginThrottle(settings.login_max_failures_per_ip, lockout)
        # Budgets checked before any hashing: per client address and global.
        self.budgets = {
            "login": AuthBudgets.per_minute(
                settings.login_per_ip_per_min, settings.login_burst_per_ip,
                settings.login_per_min, settings.login_burst,
            ),
            "register": AuthBudgets.per_minute(
                settings.register_per_ip_per_min, settings.register_burst_per_ip,
                settings.register_per_min, settings.register_burst,
            ),
            "guest": AuthBudgets.per_minute(
                settings.guest_per_ip_per_min, settings.guest_burst_per_ip,
                settings.guest_per_min, settings.guest_burst,
            ),
        }  # fmt: skip
        self.note_create_throttle = KeyedBuckets(
            settings.note_create_per_user_per_min / 60.0, settings.note_create_burst_per_user
        )
        self.lookup_throttle = KeyedBuckets(
            settings.lookup_per_user_per_min / 60.0, settings.lookup_burst_per_user
        )
        self.hashing = HashPool(settings.hash_workers, settings.hash_queue_max)
        # Signed-out tokens and ended sessions, shared through Redis when set.
        self.signouts = make_signouts(settings)
        self.allowed_origins = settings.origins()
        self.connect_throttle = KeyedBuckets(
            settings.connect_rate_per_ip_per_s, settings.connect_burst_per_ip
        )
        self.proxy_networks = settings.proxy_networks()
        self.connections = ConnectionSet()
        # Socket admission: per client address on this replica, counted before
        # a connection's first await; per user across every replica, one
        # atomic reservation per socket, renewed each heartbeat interval.
        self.address_slots = AddressSlots(settings.max_sockets_per_ip)
        self.user_slots = UserSlots(
            make_socket_admission(settings), settings.max_sockets_per_user,
            settings.lease_ttl_ms, settings.heartbeat_ms / 1000.0,
        )  # fmt: skip
        # What `welcome` says about the replica: stable, but no pod name.
        self.server_token = frames.replica_token(settings.jwt_secret, hub.replica_id)

    @property
    def draining(self) -> bool:
        return self.hub.draining

    async def authenticate(self, token: str) -> Claims:
        """Verify the JWT, then take the role from the database so a role
        change applies to tokens issued before it. A signed-out token, a
        session past its absolute lifetime and a token issued before the
        password changed are refused."""
        claims = self.codec.verify(token)
        refused = await self.signouts.refusal(claims)
        if refused:
            raise Unauthorized(refused)
        if self.codec.session_expired(claims):
            raise Unauthorized("session too old; sign in again")
        if claims.user.role == "guest":
            if not self.settings.allow_guest:
                raise Unauthorized("guest access is switched off")
            return claims
        record = await self.store.get_user(claims.user.id)
        if record is None:
            raise Unauthorized("unknown user")
        if record.disabled:  # the stored state, read on every authentication
            raise Unauthorized("this account is disabled")
        # Tokens from before this check existed carry no fingerprint; they
        # expire within COLLAB_JWT_TTL_S.
        current = self.codec.password_version(record.password_hash)
        if claims.password_version and claims.password_version != current:
            raise Unauthorized("the password was changed; sign in again")
        return Claims(record.user(), claims.expires_at, claims.token_id, claims.auth_time, current,
                      claims.issued_at)  # fmt: skip

    def spend(self, kind: str, address: str) -> None:
        """Take one from the ``kind`` budget of ``address`` and the global one;
        ``rate_limited`` (429) when either is empty."""
        if not self.budgets[kind].take(address, time.monotonic()):
            self.metrics.rate_limited.labels(kind).inc()
            raise RateLimited(f"too many {kind} requests; try again later", retry_after_s=1.0)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """A browser's WebSocket may come from the page's own origin (Origin
        matches the Host it sent) or from ``COLLAB_ALLOWED_ORIGINS``. Without
        an Origin header the client is not a browser (a browser always sends
        one on a WebSocket upgrade), and cross-site hijacking needs a browser
        carrying someone else's credentials: such clients are let through."""
        return origin_allowed(origin, host, self.allowed_origins)

    def is_loopback(self, conn: HTTPConnection) -> bool:
        try:
            return ipaddress.ip_address(self.client_address(conn)).is_loopback
        except ValueError:
            return False

    def client_address(self, conn: HTTPConnection) -> str:
        peer = conn.client.host if conn.client else "unknown"
        return client_address(peer, conn.headers.get("x-real-ip"), self.proxy_networks)

    async def drain(self) -> None:
        await self.hub.drain()
