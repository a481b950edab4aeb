"""Live revocation: role changes, removed grants, kicks, deleted notes and
admin revokes take effect at once on every replica (protocol.md, Roles and
access). Tokens are fenced by the replica that handles the request, through
PostgreSQL, so it works even when the holder's replica is cut off (rule 5)."""

from __future__ import annotations

from typing import Any

from collab import events, frames
from collab.access import can_manage, can_write
from collab.close_codes import CloseCode
from collab.errors import Forbidden, NotFound
from collab.host import Host
from collab.leases.base import LeaseStore
from collab.registry.base import SessionRegistry
from collab.sockets import SocketIndex
from collab.store.base import Store
from collab.tokens import Tokens
from collab.types import User


class Revocations:
    def __init__(
        self,
        store: Store,
        registry: SessionRegistry,
        leases: LeaseStore,
        sockets: SocketIndex,
        tokens: Tokens,
        host: Host,
    ) -> None:
        self.store = store
        self.registry = registry
        self.leases = leases
        self.sockets = sockets
        self.tokens = tokens
        self.host = host

    async def on_access(self, user_id: str, note_id: Any) -> None:
        """Role or grant changed: re-check every local socket of the user at
        once; drop what it may no longer see, fence what it may no longer
        write (protocol.md, Roles and access)."""
        record = await self.store.get_user(user_id)
        for peer in self.sockets.of_user(user_id):
            if record is None and peer.user.role != "guest":  # guests are never stored
                peer.close_soon(CloseCode.FORBIDDEN, "account removed")
                continue
            if record is not None and record.disabled:
                peer.close_soon(CloseCode.FORBIDDEN, "account disabled")
                continue
            if record is not None:
                peer.user = record.user()
            notes = [note_id] if isinstance(note_id, str) else self.sockets.subscriptions(peer)
            for nid in notes:
                peer.access.pop(nid, None)
                note = await self.store.get_note(nid)
                access = await self.host.access_of(peer.user, note) if note else None
                if access is None and self.sockets.delivered(peer, nid) is not None:
                    peer.close_soon(CloseCode.FORBIDDEN, "access revoked")
                    break
                if self.sockets.delivered(peer, nid) is not None and access is not None:
                    peer.access[nid] = access
                    peer.push(frames.encode(frames.access(nid, access)))

    async def user_access_changed(self, user_id: str, note_id: str | None) -> None:
        """Called by the API after a role change or a grant removal. Fences any
        token the user may no longer hold right here (it works even when the
        holder's replica is cut off), then tells every replica."""
        record = await self.store.get_user(user_id)
        for session in await self.registry.sessions_of(user_id):
            for nid in await self.registry.notes(session.session):
                if note_id is not None and nid != note_id:
                    continue
                note = await self.store.get_note(nid)
                if note is None:
                    continue
                user = record.user() if record else User(user_id, "", "guest")
                if not can_write(await self.host.access_of(user, note)):
                    view = await self.leases.view(nid)
                    if getattr(view, "session", None) == session.session:
                        await self.tokens.revoke(user, nid)
                    elif any(s == session.session for s, _ in view.queue):
                        # Out of the queue at once, so nobody who may write
                        # waits behind someone who may not (the grant path
                        # checks again, in case this is missed).
                        await self.leases.leave_queue(nid, session.session)
                        await self.registry.remove_note(session.session, nid)
                        await self.host.lock_changed(nid, "queue")
        await self.host.publish(events.access(user_id, note_id))

    async def note_visibility_changed(self, note_id: str) -> None:
        """Called by the API after a note's visibility changed: every replica
        re-checks the sockets subscribed to that note, and only those."""
        await self.host.publish(events.visibility(note_id))

    async def on_visibility(self, note_id: str) -> None:
        for peer in self.sockets.viewers(note_id):
            try:
                access = await self.host.current_access(peer.user, note_id)
            except NotFound:
                continue  # deleted meanwhile: the deleted event handles it
            if access is None:
                peer.close_soon(CloseCode.FORBIDDEN, "access revoked")
            elif peer.access.get(note_id) != access:
                peer.access[note_id] = access
                peer.push(frames.encode(frames.access(note_id, access)))

    async def kick(self, session: str) -> None:
        record = await self.registry.get(session)
        if record is None:
            raise NotFound("no such session")
        await self._give_up_tokens(record.session, record.user)
        await self.host.publish(events.kick(session))

    async def end_sessions(self, user: User) -> None:
        """Every live session of ``user``, on every replica: tokens fenced,
        queue places left, sockets closed 4403 as for a kick. The caller has
        already made their tokens unusable (``signouts``), so a reconnect
        with one of them is refused."""
        for record in await self.registry.sessions_of(user.id):
            await self._give_up_tokens(record.session, record.user)
            await self.host.publish(events.kick(record.session))

    async def account_closed(self, user_id: str) -> None:
        """The account was disabled or is being deleted: every write token its
        sessions hold is fenced here, through the store (it works even if the
        holder's replica is cut off), its queue places go, and every replica
        closes its sockets (``on_access``: 4403 "account disabled" or
        "account removed")."""
        for record in await self.registry.sessions_of(user_id):
            await self._give_up_tokens(record.session, record.user)
        await self.host.publish(events.access(user_id, None))

    async def _give_up_tokens(self, session: str, user: User) -> None:
        for nid in await self.registry.notes(session):
            view = await self.leases.view(nid)
            try:
                if getattr(view, "session", None) == session:
                    await self.tokens.revoke(user, nid)
                elif any(s == session for s, _ in getattr(view, "queue", ())):
                    await self.leases.leave_queue(nid, session)
                    await self.registry.remove_note(session, nid)
                    await self.host.lock_changed(nid, "queue")
            except NotFound:
                continue  # the note went meanwhile: nothing to hold

    async def note_deleted(self, note_id: str) -> None:
        # Nothing of a deleted note may outlive it in the lease store: its
        # fence counter and queue would otherwise stay forever.
        await self.leases.forget_note(note_id)
        await self.host.publish(events.deleted(note_id))

    async def revoke(self, actor: User, note_id: str) -> int:
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFound("no such note")
        if not can_manage(await self.host.access_of(actor, note)):
            raise Forbidden("only the owner or an admin can revoke the token")
        return await self.tokens.revoke(actor, note_id)
