"""What the hub needs of one connected socket. ``session.py`` implements it
over a Starlette WebSocket; tests can implement it in memory. What a socket
has been delivered is kept by ``sockets.SocketIndex``, not here."""

from __future__ import annotations

from typing import Protocol

from collab.types import Access, User


class Peer(Protocol):
    socket_id: str
    session: str
    user: User
    # note id -> access level, cached until an access/role event
    access: dict[str, Access]

    def push(self, frame: str) -> None:
        """Queue one encoded frame; never blocks. A full queue drops the peer."""

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket from the server side without waiting."""

    async def recheck_sign_in(self) -> None:
        """Check the token the socket signed in with again (signed out, a
        password changed); a token refused now closes the socket 4401."""
