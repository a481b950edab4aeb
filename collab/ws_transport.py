"""The WebSocket connection under ``collab serve`` (uvicorn's sans-I/O
protocol), with two hooks the socket shell (``collab/session.py``) finds in
the connection's scope:

- ``SEND_NOW``: write one server frame at once, already framed, when the
  transport can take it. A frame pushed to many viewers is framed once for
  all of them (``framed_text``) and written straight to each transport,
  instead of going through a queue, a task switch, the ASGI ``send`` and a
  per-socket encode for each viewer (docs/benchmarks.md).
- ``ABORT``: drop the connection without a close handshake, for a client that
  does not read and would never read the close frame.

Under another ASGI server the hooks are absent and the shell uses plain ASGI
sends."""

from __future__ import annotations

import struct
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

SEND_NOW = "collab.send_now"
ABORT = "collab.abort"

_last: tuple[str, bytes] = ("", b"\x81\x00")


def framed_text(text: str) -> bytes:
    """``text`` as one unmasked, unfragmented WebSocket text frame (RFC 6455
    5.2; no extension is negotiated). The last result is kept, keyed by the
    string object itself, so a frame pushed to a thousand viewers is encoded
    and framed once."""
    global _last
    if _last[0] is text:
        return _last[1]
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    _last = (text, header + payload)
    return _last[1]


class CollabWebSocketProtocol(WebSocketsSansIOProtocol):
    async def run_asgi(self) -> None:
        scope = cast(dict[str, Any], self.scope)  # ASGI allows keys of a server's own
        scope[ABORT] = self.transport.abort
        scope[SEND_NOW] = self.send_now
        await super().run_asgi()

    def send_now(self, framed: bytes) -> bool:
        """Write ``framed`` now if the connection is open and its transport is
        below its high-water mark; False (nothing written) otherwise."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(framed)
        return True
