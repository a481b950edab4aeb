"""Keeps the session records and presence of this replica's sockets alive,
renewed in batches rather than per heartbeat.

A heartbeat only marks its socket (``beat``). A pass every ``PASS_S`` renews
the session record and the presence on every subscribed note of each socket
marked since the previous pass: one pipelined round trip per backend and batch
(``run_script_many`` in collab/redis_client.py), where each heartbeat used to
run two Redis scripts of its own. With 10,000 viewers heartbeating every 5 s
that is a few round trips a second instead of 4,000 scripts a second.

Each renewal keeps the expiry the heartbeat itself would have set: the TTL is
counted from the heartbeat's arrival, not from the pass, so a socket that stops
heartbeating lapses exactly when it would have without the batching. A pass
that fails leaves the marks for the next one (with their TTL shrinking), so a
short Redis blip costs nothing. Write-token leases are not renewed here: a
holder's heartbeat renews its lease at once (collab/tokens.py), because the
lease's expiry decides who may write; a session record and presence only say
who is connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from collab import events
from collab.clock import utc_now
from collab.close_codes import CloseCode
from collab.host import Host
from collab.peer import Peer
from collab.presence.base import PresenceStore
from collab.registry.base import SessionRecord, SessionRegistry
from collab.settings import Settings
from collab.sockets import SocketIndex

log = logging.getLogger("collab.renewals")

# Longest time between passes. A heartbeat's renewal waits at most this long;
# the TTL it renews is at least two heartbeat intervals (settings), so the
# record never lapses while its socket heartbeats.
PASS_S = 1.0
# Renewals per round trip: bounds the pipeline's buffers (a few hundred bytes
# per call) and lets hellos interleave with a long pass.
BATCH = 500
# A mark whose TTL has this little left is not renewed: it would lapse before
# the renewal lands, and the socket's next heartbeat marks it again.
MIN_LEFT_MS = 50


class Renewals:
    def __init__(
        self,
        settings: Settings,
        registry: SessionRegistry,
        presence: PresenceStore,
        sockets: SocketIndex,
        host: Host,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.presence = presence
        self.sockets = sockets
        self.host = host
        self._clock = clock  # seconds; the event loop's clock when None
        # Sockets heartbeating since the last pass -> arrival (loop time, s).
        self._marks: dict[Peer, float] = {}

    def beat(self, peer: Peer) -> None:
        """A heartbeat arrived: renew the socket's session and presence in
        the next pass, counted from now."""
        self._marks[peer] = self._now()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def forget(self, peer: Peer) -> None:
        self._marks.pop(peer, None)

    def pending(self) -> int:
        return len(self._marks)

    async def run(self) -> None:
        """A pass every ``PASS_S`` (or heartbeat interval, if shorter), from
        start to start."""
        loop = asyncio.get_running_loop()
        period = min(PASS_S, self.settings.heartbeat_ms / 1000.0)
        due = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = loop.time() + period
            try:
                await self.renew_marked()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad pass end the renewals
                log.warning("session renewal pass failed", exc_info=True)

    async def renew_marked(self) -> None:
        """Renew every socket marked since the last pass, in batches."""
        marks, self._marks = self._marks, {}
        now = self._now()
        ttl_ms = self.settings.lease_ttl_ms
        due: list[tuple[Peer, float, int]] = []
        for peer, at in marks.items():
            left = round(ttl_ms - (now - at) * 1000)
            if left >= MIN_LEFT_MS and self.sockets.get(peer.session) is peer:
                due.append((peer, at, left))
        for start in range(0, len(due), BATCH):
            chunk = due[start : start + BATCH]
            try:
                await self._renew(chunk)
            except Exception:
                log.warning("session renewal failed; retried on the next pass", exc_info=True)
                for peer, at, _left in chunk:
                    self._marks.setdefault(peer, at)

    async def _renew(self, chunk: list[tuple[Peer, float, int]]) -> None:
        answers = await self.registry.touch_many(
            [(peer.session, peer.socket_id, left) for peer, _at, left in chunk]
        )
        live: list[tuple[Peer, int]] = []
        for (peer, at, left), answer in zip(chunk, answers, strict=True):
            if isinstance(answer, Exception):
                self._marks.setdefault(peer, at)
            elif answer or await self._reclaim(peer, left):
                live.append((peer, left))
        touches = [
            (note_id, peer.session, peer.user, left)
            for peer, left in live
            for note_id in self.sockets.subscriptions(peer)
        ]
        changed: set[str] = set()
        for (note_id, *_rest), answer in zip(
            touches, await self.presence.touch_many(touches), strict=True
        ):
            if isinstance(answer, Exception):
                log.warning("presence renewal failed", extra={"note": note_id})
            elif answer:  # a viewer that had lapsed is back: the viewer list changed
                changed.add(note_id)
        for note_id in sorted(changed):
            await self.host.publish(events.presence(note_id))

    async def _reclaim(self, peer: Peer, left_ms: int) -> bool:
        """The session's record did not name this socket: True if the socket
        still serves it (the record had expired and is claimed back), False
        if the session moved to another socket (this one closes; we missed
        the event that would have told us)."""
        current = await self.registry.get(peer.session)
        if current is not None and current.socket != peer.socket_id:
            peer.close_soon(CloseCode.SUPERSEDED, "session resumed elsewhere")
            return False
        if current is None:
            record = SessionRecord(peer.session, peer.user, self.host.replica_id, peer.socket_id,
                                   utc_now())  # fmt: skip
            await self.registry.claim(record, left_ms)
        return True
