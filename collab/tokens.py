"""The driver of the token book (``token_book.py``): grant, queue, renew,
release, revoke, expiry and Redis-reset handling for the sessions this replica
serves. The book keeps the state and makes the decisions; this module does
the I/O they call for, against the leases, the store, the registry and the
bus, and reports back.

The lease (``collab.leases``) decides who should be writing; the database's
``notes.fence`` decides whose writes count (docs/design.md). A grant is only
reported after ``store.advance_fence`` committed it (rule 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from collab import events, frames
from collab.access import can_write
from collab.errors import BadRequest, Forbidden, Locked, NotFound, Unavailable
from collab.host import Host
from collab.leases.base import LeaseStore, LeaseView
from collab.messages import Rid
from collab.metrics import Metrics
from collab.registry.base import SessionRegistry
from collab.settings import Settings
from collab.sockets import SocketIndex
from collab.store.base import Store
from collab.token_book import (
    AfterAdvance,
    AfterRenew,
    Held,
    Release,
    TokenBook,
    Waiting,
    after_advance,
    after_renew,
)
from collab.types import LockState, LossReason, User

if TYPE_CHECKING:
    from collab.peer import Peer

log = logging.getLogger("collab.tokens")


def _now() -> float:
    """Seconds on the event loop's clock: every deadline here is measured on
    it, so a simulation that runs the loop on virtual time moves them too."""
    return asyncio.get_running_loop().time()


_GRANT_ATTEMPTS = 4


class Tokens:
    def __init__(
        self,
        settings: Settings,
        leases: LeaseStore,
        store: Store,
        registry: SessionRegistry,
        sockets: SocketIndex,
        metrics: Metrics,
        host: Host,
    ) -> None:
        self.settings = settings
        self.leases = leases
        self.store = store
        self.registry = registry
        self.sockets = sockets
        self.metrics = metrics
        self.host = host
        s = settings
        self.book = TokenBook(s.lease_ttl_ms / 1000.0, (s.lease_ttl_ms + s.lock_delay_ms) / 1000.0)
        self._retries: dict[tuple[str, str], asyncio.TimerHandle] = {}  # waiters' next poll

    @property
    def held(self) -> dict[str, dict[str, Held]]:
        return self.book.held

    @property
    def waiting(self) -> dict[str, dict[str, Waiting]]:
        return self.book.waiting

    # -- queries ---------------------------------------------------------------
    async def lock_state(self, note_id: str) -> LockState | None:
        view = await self.leases.view(note_id)
        return view.lock_state() if isinstance(view, LeaseView) else None

    def leases_of(self, session: str) -> list[dict[str, Any]]:
        return self.book.leases_of(session, _now())

    # -- acquire -----------------------------------------------------------------
    async def acquire(self, peer: Peer, note_id: str, wait: bool, rid: Rid) -> dict[str, Any]:
        # Rule 2: write access is read from the store at every acquire, never
        # from the socket's cache or from an access event that may be lost.
        if not can_write(await self.host.current_access(peer.user, note_id)):
            raise Forbidden("you cannot write to this note")
        left = self.book.paused_for(_now())
        if left:
            raise Unavailable(f"token grants are paused after a lock-service reset ({left:.1f}s)")
        # A holder or waiter here must hear the note's lock events (a release
        # to hand over, a revoke), subscribed to the note or not.
        await self.host.follow(events.note_topic(note_id))
        session = peer.session
        started = self.book.begin_attempt(session, note_id)
        if not started and self.book.waiting_on(session, note_id) is not None:
            # A waiter attempt for this very note is under way: it answers
            # with ``granted`` (carrying this rid) or keeps the place, so a
            # second grant attempt here could only send ``granted`` twice.
            self.book.wait(session, note_id, rid, peer.user)
            return frames.queued(rid, note_id, 1)
        try:
            kind, value = await self._try(session, peer.user, note_id, wait)
        finally:
            if started:
                self.book.end_attempt(session, note_id)
        if kind == "granted":
            self._forget_wait(session, note_id)
            return frames.granted(rid, note_id, value, self.settings.lease_ttl_ms)
        if kind == "queued":
            if self.book.wait(session, note_id, rid, peer.user):
                # The queue place belongs to the session (rule 9): a resume on
                # any replica finds it through the registry.
                await self.registry.add_note(session, note_id)
            await self.host.lock_changed(note_id, "queued")
            self._schedule_retry(session, note_id)
            return frames.queued(rid, note_id, value)
        raise Locked()

    async def _try(self, session: str, user: User, note_id: str, wait: bool) -> tuple[str, int]:
        """Redis step then PostgreSQL step; returns (kind, fence|position)."""
        for _ in range(_GRANT_ATTEMPTS):
            result = await self.leases.try_acquire(note_id, session, user, wait)
            if result.kind != "granted":
                return result.kind, result.position
            if result.already and self.book.counts_already(session, note_id, result.fence):
                return "granted", result.fence
            if self.settings.fault_stall_after_grant_s:  # test-only fault window
                await asyncio.sleep(self.settings.fault_stall_after_grant_s)
            try:
                # The registry first: once the fence commits, a resume on any
                # replica must find the token (rule 9). An entry for a grant
                # that then fails is harmless: adoption checks the lease.
                await self.registry.add_note(session, note_id)
                advance = await self.store.advance_fence(note_id, result.fence, session, user)
            except (NotFound, Forbidden):
                await self._give_back(note_id, session, result.fence, user, keep_place=False)
                raise
            except Exception:
                # The grant never counted (rule 1): give the lease back at
                # once, keeping a waiter's place at the head (rule 6).
                await self._give_back(note_id, session, result.fence, user, keep_place=wait)
                raise
            decision = after_advance(advance.raised, self.leases.lost_holders_may_live, wait)
            if decision is AfterAdvance.GRANT:
                await self._granted(session, user, note_id, result.fence)
                return "granted", result.fence
            log.warning(
                "fence counter behind database", extra={"note": note_id, "db": advance.fence}
            )
            await self.leases.raise_fence(note_id, advance.fence)
            await self._give_back(note_id, session, result.fence, user, keep_place=wait)
            if decision is AfterAdvance.RETRY:
                continue
            # After the give-back: a clean end clears any lock-delay.
            await self.leases.hold_back(note_id, int(self.book.pause_s * 1000))
            if decision is AfterAdvance.PAUSE_AND_QUEUE:
                return "queued", 1
            raise Unavailable("token grants for this note are paused after a lock-service reset")
        raise Unavailable("could not grant the token; retry")

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

    async def _granted(self, session: str, user: User, note_id: str, fence: int) -> None:
        self.book.hold(session, note_id, fence, _now())
        self.metrics.grants.inc()
        # The audit row is best effort (hub.audit swallows failures) and the
        # grant already counted when advance_fence committed (rule 1): write
        # it off the hot path, saving one commit per grant.
        self.host.spawn(self.host.audit(note_id, "granted", session, user.id, fence))
        await self.host.lock_changed(note_id, "granted", fence=fence)

    # -- waiters -----------------------------------------------------------------
    def _forget_wait(self, session: str, note_id: str) -> Waiting | None:
        retry = self._retries.pop((session, note_id), None)
        if retry is not None:
            retry.cancel()
        return self.book.unwait(session, note_id)

    def _schedule_retry(
        self, session: str, note_id: str, grantable_in_s: float | None = None
    ) -> None:
        """Waiters' replicas poll (rule 6: expiry events are unreliable)."""
        if self.book.waiting_on(session, note_id) is None:
            return
        key = (session, note_id)
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()
        delay = self.book.retry_in(_now(), grantable_in_s)
        self._retries[key] = asyncio.get_running_loop().call_later(
            delay, lambda: self.host.spawn(self.try_waiter(session, note_id))
        )

    async def try_waiter(self, session: str, note_id: str) -> None:
        if not self.book.begin_attempt(session, note_id):
            return
        try:
            await self._try_waiter(session, note_id)
        finally:
            self.book.end_attempt(session, note_id)

    async def _try_waiter(self, session: str, note_id: str) -> None:
        entry = self.book.waiting_on(session, note_id)
        peer = self.sockets.get(session)
        if entry is None or peer is None:
            return
        try:
            wait_ms = await self.leases.grantable_in_ms(note_id, session)
            if wait_ms > 0 or self.book.paused_for(_now()):
                self._schedule_retry(session, note_id, wait_ms / 1000.0 + 0.01)
                return
            # Rule 2 at every waiter grant: a waiter whose write access went
            # away while it waited (an event about it may have been lost) is
            # dropped from the queue instead of being granted.
            if not can_write(await self.host.current_access(peer.user, note_id)):
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
        entry = self._forget_wait(session, note_id)
        try:
            await self.leases.leave_queue(note_id, session)
            await self.registry.remove_note(session, note_id)
        except Exception:  # its liveness key then expires within one TTL
            log.warning("could not drop a waiter", extra={"note": note_id})
        peer = self.sockets.get(session)
        if peer is not None:
            peer.push(frames.encode(Forbidden(why).wire(entry.rid if entry else None)))
        await self.host.lock_changed(note_id, "queue")

    async def wake_waiters(self, note_id: str) -> None:
        """A lock event for ``note_id``: let our waiters on it try now."""
        for session in self.book.waiters_of(note_id):
            self.host.spawn(self.try_waiter(session, note_id))

    def typed(self, session: str, note_id: str) -> None:
        """An edit arrived from the session: a keystroke restarts the idle
        clock of its token (docs/protocol.md, Idle hand-off)."""
        self.book.active(session, note_id, _now())

    # -- renew / release -----------------------------------------------------------
    async def heartbeat(self, peer: Peer) -> list[dict[str, Any]]:
        session = peer.session
        for note_id, held in self.book.holds_of(session):
            ok = await self.leases.renew(note_id, session, held.fence)
            lost_data = False if ok else await self.leases.check_epoch()
            outcome = after_renew(ok, lost_data)
            if outcome is AfterRenew.RENEWED:
                self.book.renewed(session, note_id, _now())
                self.metrics.renewals.inc()
            elif outcome is AfterRenew.RESET:
                # The lease is gone because Redis lost its data (rule 8): every
                # lease is void, and holders are told "reset", not "expired".
                await self.on_reset()
                break
            else:
                await self.lose(session, note_id, "expired")
        for note_id in self.book.waits_of(session):
            if await self.leases.renew_waiter(note_id, session) == 0:
                # Our queue entry vanished (expired or a Redis reset): rejoin.
                self.host.spawn(self.try_waiter(session, note_id))
        return self.leases_of(session)

    async def release(
        self, peer: Peer, note_id: str, fence: int | None, rid: Rid
    ) -> dict[str, Any]:
        session = peer.session
        plan = self.book.release(session, note_id, fence)
        if plan is Release.REFUSE:
            # Answering "released" here would leave a phantom hold: the lease
            # stays ours and keeps being renewed.
            raise BadRequest(f"fence {fence} is not your token for this note")
        if plan is Release.HELD:
            held = self.book.unhold(session, note_id)
            assert held is not None
            await self.leases.release(note_id, session, held.fence)
            # Best-effort audit off the hot path: the waiter's hand-off need
            # not wait for this commit.
            self.host.spawn(self.host.audit(note_id, "released", session, peer.user.id, held.fence))
            self.host.spawn(self.host.save_revision(note_id, peer.user.id))
        elif plan is Release.UNTRACKED and fence is not None:
            # A release for a lease this replica does not track (e.g. right
            # after a resume): still a compare-owner delete, so it is safe.
            await self.leases.release(note_id, session, fence)
        if self._forget_wait(session, note_id) is not None:
            await self.leases.leave_queue(note_id, session)
        await self.registry.remove_note(session, note_id)
        await self.host.lock_changed(note_id, "released")
        return frames.released(rid, note_id)

    def forget_waits(self, session: str) -> None:
        """The session's socket here closed: stop polling for its queue
        places here. They live on in the lease store for one TTL, for a
        resume on any replica (rule 9); its leases stay tracked until renewed
        elsewhere or expired, so an expiry is reported."""
        for note_id in self.book.waits_of(session):
            self._forget_wait(session, note_id)

    def forget_session(self, session: str) -> None:
        """The session moved to another replica: nothing of it is ours."""
        self.forget_waits(session)
        self.book.forget_session(session)

    def adopt_wait(self, session: str, note_id: str, user: User) -> None:
        """A resumed session's queue place, now served from this replica."""
        self.book.adopt_wait(session, note_id, user)
        self.host.spawn(self.try_waiter(session, note_id))

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
        await self.host.audit(note_id, "revoked", "", actor.id, fence, f"by {actor.name}")
        await self.host.lock_changed(note_id, "revoked", fence=fence)
        return fence

    async def recheck_access(self) -> None:
        """Holders whose write access went away (an access event may have
        been lost) are fenced out, so nobody who may not write keeps a
        token alive with heartbeats while others wait (rule 2)."""
        for session, note_id, _ in self.book.all_holds():
            peer = self.sockets.get(session)
            if peer is not None:
                await self.fence_if_unauthorised(peer, note_id)

    async def fence_if_unauthorised(self, peer: Peer, note_id: str) -> None:
        try:
            allowed = can_write(await self.host.current_access(peer.user, note_id))
        except NotFound:
            allowed = False
        if allowed or self.book.holding(peer.session, note_id) is None:
            return
        view = await self.leases.view(note_id)
        if getattr(view, "session", None) != peer.session:
            return  # not ours any more: nothing to fence
        log.info("holder lost write access; fencing it out", extra={"note": note_id})
        with contextlib.suppress(NotFound):
            await self.revoke(peer.user, note_id)

    async def lose(self, session: str, note_id: str, reason: LossReason) -> None:
        held = self.book.holding(session, note_id)
        if held is None:
            return
        if reason == "expired" and not self.sockets.serves(session):
            # No socket here any more: the session may have resumed on another
            # replica and renewed there. Only a lease really gone is a loss.
            view = await self.leases.view(note_id)
            if getattr(view, "session", None) == session:
                self.book.unhold(session, note_id)
                return
        self.book.unhold(session, note_id)
        await self._told_lost(session, note_id, held, reason)

    async def hand_off_idle(self, session: str, note_id: str, held: Held, fence: int) -> None:
        """The idle holder's token goes to the next waiter as a clean release.
        ``fence``, above the holder's, is already committed to the database, so
        the holder's edits are refused from here on (rule 5); the lease counter
        is raised to it so the next grant lands above it at the first try, and
        the lease is released compare-owner: no lock-delay (rule 4)."""
        if self.book.holding(session, note_id) is not held:
            return
        self.book.unhold(session, note_id)
        try:
            await self.leases.raise_fence(note_id, fence)
            await self.leases.release(note_id, session, held.fence)
        except Exception:  # the unrenewed lease then expires within one TTL
            log.warning("could not release an idle token", extra={"note": note_id})
        self.metrics.idle_handoffs.inc()
        await self._told_lost(session, note_id, held, "idle", fence)

    async def _told_lost(
        self, session: str, note_id: str, held: Held, reason: LossReason, fence: int = 0
    ) -> None:
        """The token is no longer the session's: tell it and every replica."""
        counter = {"expired": self.metrics.expiries, "reset": self.metrics.resets}
        if reason in counter:
            counter[reason].inc()
        peer = self.sockets.get(session)
        user_id = peer.user.id if peer else ""
        if peer is not None:
            peer.push(frames.encode(frames.lease_lost(note_id, held.fence, reason)))
        try:
            if await self._serves_record(session, peer.socket_id if peer else None):
                await self.registry.remove_note(session, note_id)
            await self.host.audit(note_id, reason, session, user_id, held.fence)
        except Exception:
            log.warning("could not record lease loss", extra={"note": note_id})
        await self.host.lock_changed(note_id, reason, fence=fence)

    async def _serves_record(self, session: str, socket: str | None) -> bool:
        """Whether this replica may change the session's shared record: not
        when the session resumed elsewhere and a stale socket here has not
        heard (the token may be held there now, and a resume must find it)."""
        record = await self.registry.get(session)
        if record is None:
            return True
        return record.replica == self.host.replica_id and socket in (None, record.socket)

    async def on_lock_event(self, note_id: str, reason: str, fence: int) -> None:
        """Another replica changed the note's token: tell our holder if it was
        revoked, and let our waiters try."""
        for loss in self.book.outranked(note_id, fence, reason):
            await self.lose(loss.session, loss.note, loss.reason)
        await self.wake_waiters(note_id)

    async def expire_overdue(self) -> None:
        """Holders whose heartbeat stopped: their lease is gone by now."""
        for loss in self.book.overdue(_now()):
            await self.lose(loss.session, loss.note, loss.reason)

    async def on_reset(self) -> None:
        """Redis lost its data (rule 8): every lease is lost; grants pause for
        TTL + lock-delay so no new holder overlaps one that has not noticed."""
        for loss in self.book.reset(_now()):
            await self.lose(loss.session, loss.note, loss.reason)
        for session, note_id in self.book.all_waits():
            self._schedule_retry(session, note_id)

    async def poll(self) -> None:
        """Periodic safety net: re-try every waiter (rule 6)."""
        for session, note_id in self.book.all_waits():
            self.host.spawn(self.try_waiter(session, note_id))

    def adopt_hold(self, session: str, note_id: str, fence: int) -> None:
        """A resumed session's live lease now served from this replica."""
        self.book.hold(session, note_id, fence, _now())
