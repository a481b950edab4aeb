"""What one app instance owns, handed to the edges (the socket shell and the
HTTP routes): settings, store, hub, metrics, the token codec, the abuse
brakes and the set of live connections. Built by ``app.py``'s lifespan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from starlette.requests import HTTPConnection

from collab.auth import Claims, LoginThrottle, TokenCodec
from collab.errors import Unauthorized
from collab.hub import Hub
from collab.metrics import Metrics
from collab.protocol import KeyedBuckets, client_address
from collab.settings import Settings
from collab.store.base import Store
from collab.types import User


class LiveSocket(Protocol):
    """A live connection as the runtime counts it."""

    @property
    def user(self) -> User: ...


class ConnectionSet:
    """The live connections, also indexed by user id: the per-user socket
    limit is checked on every hello, and a scan of all sockets there made
    connecting quadratic (docs/benchmarks.md, capacity). A connection's user
    id never changes (a role change keeps the id)."""

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
        # Brute-force brakes: tight per account, looser per IP (NAT, shared offices).
        self.account_throttle = LoginThrottle(settings.login_max_failures, settings.login_lockout_s)
        self.ip_throttle = LoginThrottle(
            settings.login_max_failures_per_ip, settings.login_lockout_s
        )
        self.connect_throttle = KeyedBuckets(
            settings.connect_rate_per_ip_per_s, settings.connect_burst_per_ip
        )
        self.proxy_networks = settings.proxy_networks()
        self.connections = ConnectionSet()

    @property
    def draining(self) -> bool:
        return self.hub.draining

    async def authenticate(self, token: str) -> Claims:
        """Verify the JWT, then take the role from the database so a role
        change applies to tokens issued before it."""
        claims = self.codec.verify(token)
        if claims.user.role == "guest":
            if not self.settings.allow_guest:
                raise Unauthorized("guest access is switched off")
            return claims
        record = await self.store.get_user(claims.user.id)
        if record is None:
            raise Unauthorized("unknown user")
        return Claims(record.user(), claims.expires_at, claims.token_id)

    def client_address(self, conn: HTTPConnection) -> str:
        peer = conn.client.host if conn.client else "unknown"
        return client_address(peer, conn.headers.get("x-real-ip"), self.proxy_networks)

    def user_sockets(self, user_id: str) -> list[LiveSocket]:
        return self.connections.of_user(user_id)

    async def drain(self) -> None:
        await self.hub.drain()
