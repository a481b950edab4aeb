"""The write token of each note: grant, queue, renew, release, revoke, expiry
and Redis-reset handling, for the sessions served by this replica.

The lease (``collab.leases``) decides who should be writing; PostgreSQL's
``notes.fence`` decides whose writes count (docs/design.md). A grant is only
reported after ``store.advance_fence`` committed it (rule 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collab import frames
from collab.access import can_write
from collab.errors import BadRequest, Forbidden, Locked, NotFound, Unavailable
from collab.leases.base import LeaseView
from collab.messages import Rid
from collab.types import LockState, LossReason, User

if TYPE_CHECKING:
    from collab.hub import Hub
    from collab.peer import Peer

log = logging.getLogger("collab.tokens")


def _now() -> float:
    """Seconds on the event loop's clock: every deadline here is measured on
    it, so a simulation that runs the loop on virtual time moves them too."""
    return asyncio.get_running_loop().time()


_GRANT_ATTEMPTS = 4


@dataclass
class Held:
    fence: int
    deadline: float  # monotonic seconds: the lease ends here unless renewed


@dataclass
class Waiting:
    rid: Rid
    user: User
    retry: asyncio.TimerHandle | None = None


class Tokens:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.leases = hub.leases
        self.store = hub.store
        self.metrics = hub.metrics
        self.held: dict[str, dict[str, Held]] = {}  # session -> note -> lease
        self.waiting: dict[str, dict[str, Waiting]] = {}  # session -> note -> wait
        self._trying: set[tuple[str, str]] = set()  # waiters with an attempt running
        self.paused_until = 0.0  # monotonic; grants paused after a Redis reset (rule 8)

    @property
    def ttl_s(self) -> float:
        return self.settings.lease_ttl_ms / 1000.0

    # -- queries ---------------------------------------------------------------
    async def lock_state(self, note_id: str) -> LockState | None:
        view = await self.leases.view(note_id)
        return view.lock_state() if isinstance(view, LeaseView) else None

    def leases_of(self, session: str) -> list[dict[str, Any]]:
        now = _now()
        return [
            {"note": n, "fence": h.fence, "ttl_ms": max(0, int((h.deadline - now) * 1000))}
            for n, h in sorted(self.held.get(session, {}).items())
        ]

    # -- acquire -----------------------------------------------------------------
    async def acquire(self, peer: Peer, note_id: str, wait: bool, rid: Rid) -> dict[str, Any]:
        # Rule 2: write access is read from the store at every acquire, never
        # from the socket's cache or from an access event that may be lost.
        if not can_write(await self.hub.current_access(peer.user, note_id)):
            raise Forbidden("you cannot write to this note")
        if _now() < self.paused_until:
            left = self.paused_until - _now()
            raise Unavailable(f"token grants are paused after a lock-service reset ({left:.1f}s)")
        session = peer.session
        if (session, note_id) in self._trying:
            # A waiter attempt for this very note is under way: it answers
            # with ``granted`` (carrying this rid) or keeps the place, so a
            # second grant attempt here could only send ``granted`` twice.
            entry = self.waiting.get(session, {}).get(note_id)
            if entry is not None:
                entry.rid = rid
                return frames.queued(rid, note_id, 1)
        self._trying.add((session, note_id))
        try:
            kind, value = await self._try(session, peer.user, note_id, wait)
        finally:
            self._trying.discard((session, note_id))
        if kind == "granted":
            self._forget_wait(session, note_id)
            return frames.granted(rid, note_id, value, self.settings.lease_ttl_ms)
        if kind == "queued":
            entry = self.waiting.setdefault(session, {}).get(note_id)
            if entry is None:
                self.waiting[session][note_id] = Waiting(rid, peer.user)
                # The queue place belongs to the session (rule 9): a resume on
                # any replica finds it through the registry.
                await self.hub.registry.add_note(session, note_id)
            else:
                entry.rid = rid  # the latest acquire's rid gets the deferred granted
            await self.hub.lock_changed(note_id, "queued")
            self._schedule_retry(session, note_id)
            return frames.queued(rid, note_id, value)
        raise Locked()

    async def _try(self, session: str, user: User, note_id: str, wait: bool) -> tuple[str, int]:
        """Redis step then PostgreSQL step; returns (kind, fence|position)."""
        for _ in range(_GRANT_ATTEMPTS):
            result = await self.leases.try_acquire(note_id, session, user, wait)
            if result.kind != "granted":
                return result.kind, result.position
            held = self.held.get(session, {}).get(note_id)
            if result.already and held is not None and held.fence == result.fence:
                return "granted", result.fence
            if self.settings.fault_stall_after_grant_s:  # test-only fault window
                await asyncio.sleep(self.settings.fault_stall_after_grant_s)
            try:
                # The registry first: once the fence commits, a resume on any
                # replica must find the token (rule 9). An entry for a grant
                # that then fails is harmless: adoption checks the lease.
                await self.hub.registry.add_note(session, note_id)
                advance = await self.store.advance_fence(note_id, result.fence, session, user)
            except (NotFound, Forbidden):
                await self._give_back(note_id, session, result.fence, user, keep_place=False)
                raise
            except Exception:
                # The grant never counted (rule 1): give the lease back at
                # once, keeping a waiter's place at the head (rule 6).
                await self._give_back(note_id, session, result.fence, user, keep_place=wait)
                raise
            if advance.raised:
                await self._granted(session, user, note_id, result.fence)
                return "granted", result.fence
            # Rule 1: the grant counts only if this statement raised the fence.
            # Not raised means the counter is behind the database (Redis lost
            # or evicted it, rule 8), or it is a grant made earlier whose
            # commit we cannot prove was ours. PostgreSQL is the authority:
            # raise the counter past it and grant again.
            # The counter can only fall behind by Redis losing it (rule 8), and
            # then a holder's lease may have vanished with it: hold the note
            # back for TTL + lock-delay on every replica, so that holder is
            # not overtaken before it notices. The fence keeps it safe anyway.
            log.warning(
                "fence counter behind database", extra={"note": note_id, "db": advance.fence}
            )
            await self.leases.raise_fence(note_id, advance.fence)
            await self._give_back(note_id, session, result.fence, user, keep_place=wait)
            if not self.leases.lost_holders_may_live:
                continue  # nobody to wait for: the loss took every holder with it
            # After the give-back: a clean end clears any lock-delay.
            await self.leases.hold_back(note_id, self._reset_pause_ms)
            if wait:
                return "queued", 1
            raise Unavailable("token grants for this note are paused after a lock-service reset")
        raise Unavailable("could not grant the token; retry")

    @property
    def _reset_pause_ms(self) -> int:
        return self.settings.lease_ttl_ms + self.settings.lock_delay_ms

    async def _give_back(
        self, note_id: str, session: str, fence: int, user: User, keep_place: bool
    ) -> None:
        try:
            if keep_place:
                await self.leases.give_back(note_id, session, fence, user)
            else:
                await self.leases.drop(note_id, session, fence)
        except Exception:  # the lease then simply expires
            log.warning("could not give back a refused grant", extra={"note": note_id})

    def _hold(self, session: str, note_id: str, fence: int) -> None:
        self.held.setdefault(session, {})[note_id] = Held(fence, _now() + self.ttl_s)

    def _unhold(self, session: str, note_id: str) -> Held | None:
        notes = self.held.get(session)
        if notes is None:
            return None
        held = notes.pop(note_id, None)
        if not notes:
            del self.held[session]  # bounded by live holders, not by history
        return held

    async def _granted(self, session: str, user: User, note_id: str, fence: int) -> None:
        self._hold(session, note_id, fence)
        self.metrics.grants.inc()
        # The audit row is best effort (hub.audit swallows failures) and the
        # grant already counted when advance_fence committed (rule 1): write
        # it off the hot path, saving one commit per grant.
        self.hub.spawn(self.hub.audit(note_id, "granted", session, user.id, fence))
        await self.hub.lock_changed(note_id, "granted", fence=fence)

    # -- waiters -----------------------------------------------------------------
    def _forget_wait(self, session: str, note_id: str) -> None:
        entry = self.waiting.get(session, {}).pop(note_id, None)
        if entry is not None and entry.retry is not None:
            entry.retry.cancel()
        if session in self.waiting and not self.waiting[session]:
            del self.waiting[session]

    def _schedule_retry(self, session: str, note_id: str, delay_s: float | None = None) -> None:
        """Waiters' replicas poll (rule 6: expiry events are unreliable); the
        delay is the time until the lease or lock-delay ends, capped at TTL/3."""
        entry = self.waiting.get(session, {}).get(note_id)
        if entry is None:
            return
        if entry.retry is not None:
            entry.retry.cancel()
        delay = self.ttl_s / 3 if delay_s is None else min(delay_s, self.ttl_s / 3)
        loop = asyncio.get_running_loop()
        entry.retry = loop.call_later(
            max(delay, 0.0), lambda: self.hub.spawn(self.try_waiter(session, note_id))
        )

    async def try_waiter(self, session: str, note_id: str) -> None:
        """One attempt at a time per waiter: events, timers and polls may all
        ask at once, and a waiter must get exactly one ``granted``."""
        key = (session, note_id)
        if key in self._trying:
            return
        self._trying.add(key)
        try:
            await self._try_waiter(session, note_id)
        finally:
            self._trying.discard(key)

    async def _try_waiter(self, session: str, note_id: str) -> None:
        entry = self.waiting.get(session, {}).get(note_id)
        peer = self.hub.peers.get(session)
        if entry is None or peer is None:
            return
        try:
            wait_ms = await self.leases.grantable_in_ms(note_id, session)
            if wait_ms > 0 or _now() < self.paused_until:
                self._schedule_retry(session, note_id, wait_ms / 1000.0 + 0.01)
                return
            # Rule 2 at every waiter grant: a waiter whose write access went
            # away while it waited (an event about it may have been lost) is
            # dropped from the queue instead of being granted.
            if not can_write(await self.hub.current_access(peer.user, note_id)):
                await self.drop_waiter(session, note_id, "you can no longer write to this note")
                return
            kind, value = await self._try(session, entry.user, note_id, True)
        except NotFound:
            await self.drop_waiter(session, note_id, "the note was deleted")
            return
        except Forbidden:  # access went away after the check above
            await self.drop_waiter(session, note_id, "you can no longer write to this note")
            return
        except Exception:
            log.warning("waiter grant failed", extra={"note": note_id}, exc_info=True)
            self._schedule_retry(session, note_id)
            return
        if kind == "granted":
            self._forget_wait(session, note_id)
            peer.push(
                frames.encode(frames.granted(entry.rid, note_id, value, self.settings.lease_ttl_ms))
            )
        else:
            self._schedule_retry(session, note_id)

    async def drop_waiter(self, session: str, note_id: str, why: str) -> None:
        """Take ``session`` out of the note's queue for good and tell its
        socket here, answering its pending ``acquire``."""
        entry = self.waiting.get(session, {}).get(note_id)
        self._forget_wait(session, note_id)
        try:
            await self.leases.leave_queue(note_id, session)
            await self.hub.registry.remove_note(session, note_id)
        except Exception:  # its liveness key then expires within one TTL
            log.warning("could not drop a waiter", extra={"note": note_id})
        peer = self.hub.peers.get(session)
        if peer is not None:
            peer.push(frames.encode(Forbidden(why).wire(entry.rid if entry else None)))
        await self.hub.lock_changed(note_id, "queue")

    async def wake_waiters(self, note_id: str) -> None:
        """A lock event for ``note_id``: let our waiters on it try now."""
        for session, notes in list(self.waiting.items()):
            if note_id in notes:
                self.hub.spawn(self.try_waiter(session, note_id))

    # -- renew / release -----------------------------------------------------------
    async def heartbeat(self, peer: Peer) -> list[dict[str, Any]]:
        session = peer.session
        for note_id, held in list(self.held.get(session, {}).items()):
            ok = await self.leases.renew(note_id, session, held.fence)
            if ok:
                held.deadline = _now() + self.ttl_s
                self.metrics.renewals.inc()
            elif await self.leases.check_epoch():
                # The lease is gone because Redis lost its data (rule 8): every
                # lease is void, and holders are told "reset", not "expired".
                await self.on_reset()
                break
            else:
                await self.lose(session, note_id, "expired")
        for note_id in list(self.waiting.get(session, {})):
            if await self.leases.renew_waiter(note_id, session) == 0:
                # Our queue entry vanished (expired or a Redis reset): rejoin.
                self.hub.spawn(self.try_waiter(session, note_id))
        return self.leases_of(session)

    async def release(
        self, peer: Peer, note_id: str, fence: int | None, rid: Rid
    ) -> dict[str, Any]:
        session = peer.session
        held = self.held.get(session, {}).get(note_id)
        if held is not None and fence is not None and fence != held.fence:
            # Answering "released" here would leave a phantom hold: the lease
            # stays ours and keeps being renewed.
            raise BadRequest(
                f"fence {fence} is not your token for this note (yours is {held.fence})"
            )
        if held is not None:
            await self.leases.release(note_id, session, held.fence)
            self._unhold(session, note_id)
            # Best-effort audit off the hot path: the waiter's hand-off need
            # not wait for this commit.
            self.hub.spawn(self.hub.audit(note_id, "released", session, peer.user.id, held.fence))
            self.hub.spawn(self.hub.edits.save_revision(note_id, peer.user.id))
        elif fence is not None:
            # A release for a lease this replica does not track (e.g. right
            # after a resume): still a compare-owner delete, so it is safe.
            await self.leases.release(note_id, session, fence)
        if note_id in self.waiting.get(session, {}):
            await self.leases.leave_queue(note_id, session)
            self._forget_wait(session, note_id)
        await self.hub.registry.remove_note(session, note_id)
        await self.hub.lock_changed(note_id, "released")
        return frames.released(rid, note_id)

    def forget_waits(self, session: str) -> None:
        """The session's socket here closed: stop polling for its queue
        places here. They live on in the lease store for one TTL, for a
        resume on any replica (rule 9); its leases stay tracked until renewed
        elsewhere or expired, so an expiry is reported."""
        for note_id in list(self.waiting.get(session, {})):
            self._forget_wait(session, note_id)

    def forget_session(self, session: str) -> None:
        """The session moved to another replica: nothing of it is ours."""
        self.held.pop(session, None)
        self.forget_waits(session)

    def adopt_wait(self, session: str, note_id: str, user: User) -> None:
        """A resumed session's queue place, now served from this replica."""
        if note_id not in self.waiting.get(session, {}):
            self.waiting.setdefault(session, {})[note_id] = Waiting(None, user)
        self.hub.spawn(self.try_waiter(session, note_id))

    # -- revoke / loss ----------------------------------------------------------------
    async def revoke(self, actor: User, note_id: str) -> int:
        """Fence the current holder out: the new fence is committed to
        PostgreSQL before anyone is told (rule 5). The database fence always
        moves, even when the lease counter is behind it (Redis lost it)."""
        counter = await self.leases.revoke(note_id)
        fence = await self.store.bump_fence(note_id, counter)
        if fence > counter:
            await self.leases.raise_fence(note_id, fence)
        self.metrics.revokes.inc()
        await self.hub.audit(note_id, "revoked", "", actor.id, fence, f"by {actor.name}")
        await self.hub.lock_changed(note_id, "revoked", fence=fence)
        return fence

    async def recheck_access(self) -> None:
        """Holders whose write access went away (an access event may have
        been lost) are fenced out, so nobody who may not write keeps a
        token alive with heartbeats while others wait (rule 2)."""
        for session, notes in list(self.held.items()):
            peer = self.hub.peers.get(session)
            if peer is None:
                continue
            for note_id in list(notes):
                await self.fence_if_unauthorised(peer, note_id)

    async def fence_if_unauthorised(self, peer: Peer, note_id: str) -> None:
        try:
            allowed = can_write(await self.hub.current_access(peer.user, note_id))
        except NotFound:
            allowed = False
        if allowed or note_id not in self.held.get(peer.session, {}):
            return
        view = await self.leases.view(note_id)
        if getattr(view, "session", None) != peer.session:
            return  # not ours any more: nothing to fence
        log.info("holder lost write access; fencing it out", extra={"note": note_id})
        with contextlib.suppress(NotFound):
            await self.revoke(peer.user, note_id)

    async def lose(self, session: str, note_id: str, reason: LossReason) -> None:
        held = self.held.get(session, {}).get(note_id)
        if held is None:
            return
        if reason == "expired" and session not in self.hub.peers:
            # No socket here any more: the session may have resumed on another
            # replica and renewed there. Only a lease really gone is a loss.
            view = await self.leases.view(note_id)
            if getattr(view, "session", None) == session:
                self._unhold(session, note_id)
                return
        self._unhold(session, note_id)
        counter = {"expired": self.metrics.expiries, "reset": self.metrics.resets}
        if reason in counter:
            counter[reason].inc()
        peer = self.hub.peers.get(session)
        user_id = peer.user.id if peer else ""
        if peer is not None:
            peer.push(frames.encode(frames.lease_lost(note_id, held.fence, reason)))
        try:
            await self.hub.registry.remove_note(session, note_id)
            await self.hub.audit(note_id, reason, session, user_id, held.fence)
        except Exception:
            log.warning("could not record lease loss", extra={"note": note_id})
        await self.hub.lock_changed(note_id, reason)

    async def on_lock_event(self, note_id: str, reason: str, fence: int) -> None:
        """Another replica changed the note's token: tell our holder if it was
        revoked, and let our waiters try."""
        for session, notes in list(self.held.items()):
            held = notes.get(note_id)
            if held is not None and fence > held.fence:
                await self.lose(session, note_id, "revoked" if reason == "revoked" else "expired")
        await self.wake_waiters(note_id)

    async def expire_overdue(self) -> None:
        """Holders whose heartbeat stopped: their lease is gone by now."""
        now = _now()
        for session, notes in list(self.held.items()):
            for note_id, held in list(notes.items()):
                if held.deadline <= now:
                    await self.lose(session, note_id, "expired")

    async def on_reset(self) -> None:
        """Redis lost its data (rule 8): every lease is lost; pause grants for
        TTL + lock-delay so no new holder overlaps one that has not noticed."""
        self.paused_until = (
            _now() + (self.settings.lease_ttl_ms + self.settings.lock_delay_ms) / 1000.0
        )
        for session, notes in list(self.held.items()):
            for note_id in list(notes):
                await self.lose(session, note_id, "reset")
        for session, waits in list(self.waiting.items()):
            for note_id in waits:
                self._schedule_retry(session, note_id, self.paused_until - _now())

    async def poll(self) -> None:
        """Periodic safety net: re-try every waiter (rule 6)."""
        for session, notes in list(self.waiting.items()):
            for note_id in list(notes):
                self.hub.spawn(self.try_waiter(session, note_id))

    def adopt_hold(self, session: str, note_id: str, fence: int) -> None:
        """A resumed session's live lease now served from this replica."""
        self._hold(session, note_id, fence)
