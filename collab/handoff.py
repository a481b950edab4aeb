"""The human side of one writer at a time: a holder who walks away while
someone waits is warned, then handed off (docs/protocol.md, Idle hand-off);
a waiter can ask the holder for the token; the holder's caret reaches the
viewers. The state is the token book's (each held token's idle clock and
held-back caret, ``token_book.Held``) and the decisions are its pure
functions (``idle_step``, ``caret_delay``); this module does the I/O."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from collab import events, frames
from collab.access import can_write
from collab.errors import Fenced, Forbidden, NotFound, RateLimited
from collab.host import Host
from collab.leases.base import LeaseStore, LeaseView
from collab.messages import Caret, Rid
from collab.settings import Settings
from collab.sockets import SocketIndex
from collab.store.base import Store
from collab.token_book import Held, Idle, caret_delay, idle_step
from collab.tokens import Tokens

if TYPE_CHECKING:
    from collab.peer import Peer

log = logging.getLogger("collab.handoff")


def _now() -> float:
    """The event loop's clock, as the token book's (a simulation moves it)."""
    return asyncio.get_running_loop().time()


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class Handoff:
    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        leases: LeaseStore,
        store: Store,
        sockets: SocketIndex,
        host: Host,
        guest_view: frames.GuestView,
    ) -> None:
        self.tokens = tokens
        self.guest_view = guest_view
        self.book = tokens.book
        self.leases = leases
        self.store = store
        self.sockets = sockets
        self.host = host
        self.idle_s = settings.idle_handoff_s
        self.warn_s = settings.idle_warning_s
        self.caret_s = settings.caret_interval_ms / 1000.0
        self.request_s = settings.edit_request_interval_s
        # (session, note) -> when it last asked, oldest first; entries older
        # than ``request_s`` are dropped on every request, so the map holds at
        # most the requests of the last interval.
        self._asked: dict[tuple[str, str], float] = {}

    # -- activity (an edit is one too: ``Tokens.typed``) --------------------------------------
    def keep(self, peer: Peer, note_id: str, rid: Rid) -> dict[str, Any]:
        held = self.book.active(peer.session, note_id, _now())
        if held is None:
            raise Fenced("you hold no write token for this note")
        return frames.kept(rid, note_id, _ms(self.idle_s) if self.idle_s > 0 else None)

    # -- the idle clock -----------------------------------------------------------------------
    async def tick(self) -> None:
        """Look at every held token whose idle clock may call for something
        (run every second by the hub)."""
        for session, note_id, held in self.book.idle_candidates(_now(), self.idle_s, self.warn_s):
            try:
                await self._look(session, note_id, held)
            except Exception:
                log.warning("idle check failed", extra={"note": note_id}, exc_info=True)

    async def _look(self, session: str, note_id: str, held: Held) -> None:
        view = await self.leases.view(note_id)
        if not isinstance(view, LeaseView) or view.session != session:
            return  # not ours any more: the expiry and lock paths see to it
        if self.book.holding(session, note_id) is not held:
            return  # released, lost or re-granted while we looked
        waited_on = any(waiter != session for waiter, _ in view.queue)
        now = _now()
        step = idle_step(held, now, self.idle_s, self.warn_s, waited_on)
        if step is Idle.WARN:
            assert held.handoff_at is not None
            self._tell(
                session, frames.idle_warning(note_id, held.fence, _ms(held.handoff_at - now))
            )
        elif step is Idle.WITHDRAW:
            self._tell(session, frames.idle_warning(note_id, held.fence, None))
        elif step is Idle.HAND_OFF:
            await self._hand_off(session, note_id, held)

    async def _hand_off(self, session: str, note_id: str, held: Held) -> None:
        try:
            # Committed first: from this statement on the holder's edits are
            # refused, so nothing it is told was accepted can be overtaken. A
            # keystroke that arrives while it commits is refused (``fenced``).
            fence = await self.store.bump_fence(note_id, held.fence + 1)
        except NotFound:
            return  # deleted: the deletion takes the token
        log.info("idle holder handed off", extra={"note": note_id, "fence": fence})
        await self.tokens.hand_off_idle(session, note_id, held, fence)

    def _tell(self, session: str, frame: dict[str, Any]) -> None:
        peer = self.sockets.get(session)
        if peer is not None:
            peer.push(frames.encode(frame))

    # -- requests --------------------------------------------------------------------------------
    async def request(self, peer: Peer, note_id: str, rid: Rid) -> dict[str, Any]:
        if not can_write(await self.host.current_access(peer.user, note_id)):
            raise Forbidden("you cannot write to this note")
        now = _now()
        key = (peer.session, note_id)
        while self._asked:
            oldest_key, oldest = next(iter(self._asked.items()))
            if now - oldest < self.request_s:
                break
            del self._asked[oldest_key]
        if key in self._asked:
            wait_ms = _ms(self._asked[key] + self.request_s - now)
            raise RateLimited(
                f"you asked already; ask again in {wait_ms // 1000 + 1} s", retry_after_ms=wait_ms
            )
        view = await self.leases.view(note_id)
        if not isinstance(view, LeaseView) or view.session == peer.session:
            return frames.requested(rid, note_id, None)
        self._asked[key] = now
        await self.host.publish(events.edit_request(note_id, view.session, peer.user.brief()))
        return frames.requested(rid, note_id, view.holder.brief())

    def on_request(self, event: dict[str, Any]) -> None:
        """A request reached this replica: tell the holding session if its
        socket and its token are here."""
        session, note_id = str(event["session"]), str(event["note"])
        if self.book.holding(session, note_id) is not None:
            self._tell(session, frames.edit_request(note_id, dict(event["from"])))

    # -- the holder's caret ---------------------------------------------------------------------
    async def caret(self, peer: Peer, msg: Caret) -> None:
        held = self.book.holding(peer.session, msg.note)
        if held is None or held.fence != msg.fence:
            raise Fenced("only the token's holder shows a caret")
        frame = frames.caret(
            msg.note, peer.user.brief(), peer.session, msg.fence, msg.version, msg.anchor, msg.head
        )
        if held.caret is not None:
            held.caret = frame  # a send is already due: it takes the latest
            return
        delay = caret_delay(held, _now(), self.caret_s)
        if delay == 0:
            held.caret_at = _now()
            await self.host.publish(events.caret(frame))
            return
        held.caret = frame
        asyncio.get_running_loop().call_later(
            delay, lambda: self.host.spawn(self._send_held_caret(peer.session, msg.note))
        )

    async def _send_held_caret(self, session: str, note_id: str) -> None:
        held = self.book.holding(session, note_id)
        if held is None or held.caret is None:
            return  # the token went meanwhile: its caret is void
        frame, held.caret, held.caret_at = held.caret, None, _now()
        await self.host.publish(events.caret(frame))

    def on_caret(self, event: dict[str, Any]) -> None:
        """Forward a holder's caret to this replica's viewers of the note,
        encoded once (and once more for guests, who see the holder as
        ``GuestView`` shows people), except the holder's own socket."""
        frame = event["frame"]
        note_id, session = str(frame["note"]), str(frame["session"])
        encoded, for_guests = frames.encode(frame), ""
        for viewer in self.sockets.viewers(note_id):
            if viewer.session == session:
                continue
            if viewer.user.role != "guest":
                viewer.push(encoded)
                continue
            if not for_guests:
                shown = self.guest_view.person(note_id, frame["holder"])
                alias = self.guest_view.alias(note_id, "session\x00" + session)
                for_guests = frames.encode({**frame, "holder": shown, "session": alias})
            viewer.push(for_guests)
