"""Every WebSocket close code the server sends (docs/protocol.md, Close codes).

The server never sends 1006: that code is reserved for a connection that ended
without a close frame, which a client sees when the network drops."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    # The connection ended normally, or the client went away first.
    NORMAL = 1000
    # Abuse and rate limits: too many bad frames, frames over the rate, an
    # outbound queue that a slow reader let fill, the connect rate of an
    # address, too many sockets of one user, a binary first frame.
    POLICY = 1008
    # A frame over COLLAB_MAX_FRAME_BYTES; sent by the WebSocket server itself
    # (uvicorn's ws_max_size), never by collab's own code.
    TOO_BIG = 1009
    # The transport failed while sending, or a backing store was down at hello.
    INTERNAL = 1011
    # The replica is draining: reconnect with resume, to any replica.
    SERVER_RESTART = 1012
    # A failed hello (bad, expired or missing token; first frame not hello), or
    # the token in force expired and was not refreshed within the grace period.
    UNAUTHORIZED = 4401
    # Resume of another user's session, a kick by an administrator, read
    # access to a subscribed note removed, or the account removed.
    FORBIDDEN = 4403
    # No hello within COLLAB_HELLO_TIMEOUT_S.
    HELLO_TIMEOUT = 4408
    # Another socket resumed this socket's session.
    SUPERSEDED = 4409
