"""The one place that combines store, leases, presence, registry and bus.

The hub keeps this replica's sockets, their subscriptions and the last state
pushed per note, turns client requests into store/lease operations and fans
events out locally and, through the bus, to every other replica. Delivery of
edits per note is serialised and gap-free: a replica that sees a version jump
replays the missing edits from the store before pushing (rule 7).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from collab import events, frames
from collab.access import can_read, note_access
from collab.bus.base import Bus
from collab.clock import utc_now
from collab.close_codes import CloseCode
from collab.edits import EditFeed
from collab.errors import Forbidden, NotFound, RateLimited
from collab.events import Event
from collab.fanout import Fanout
from collab.handoff import Handoff
from collab.leases.base import LeaseStore, LeaseView
from collab.messages import Rid
from collab.metrics import Metrics
from collab.peer import Peer
from collab.presence.base import PresenceStore
from collab.registry.base import SessionRecord, SessionRegistry
from collab.renewals import Renewals
from collab.revocation import Revocations
from collab.settings import Settings
from collab.sockets import SocketIndex
from collab.store.base import Store
from collab.tokens import Tokens
from collab.types import Access, Note, User

log = logging.getLogger("collab.hub")

# How long close() waits for cancelled background tasks to finish.
_CLOSE_WAIT_S = 2.0


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        leases: LeaseStore,
        presence: PresenceStore,
        registry: SessionRegistry,
        bus: Bus,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.leases = leases
        self.presence = presence
        self.registry = registry
        self.bus = bus
        self.metrics = metrics
        self.replica_id = settings.replica_id or uuid.uuid4().hex[:8]
        self.sockets = SocketIndex()  # the live sockets here, by session, note and user
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.tokens = Tokens(settings, leases, store, registry, self.sockets, metrics, self)
        self.fanout = Fanout(self.sockets, presence, self.tokens, self)
        self.edits = EditFeed(
            settings, store, self.sockets, metrics, self.tokens, self.fanout, self
        )
        self.revocations = Revocations(store, registry, leases, self.sockets, self.tokens, self)
        self.handoff = Handoff(
            settings, self.tokens, leases, store, self.sockets, self, self.fanout.guest_view
        )
        self.renewals = Renewals(settings, registry, presence, self.sockets, self)
        self.draining = False
        self._timeline_changes = store.timeline_changes  # failovers acted on (rule 10)
        self._resnapshot: set[str] = set()  # notes owed a snapshot after a failover
        # Topics this replica follows on the bus; a future while the bus has
        # not confirmed the subscription yet (``follow``).
        self._followed: dict[str, asyncio.Future[None] | None] = {}

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        await self.leases.start()
        await self.presence.start()
        await self.registry.start()
        await self.share_timeline()
        await self.bus.start(self.on_event, self.resync)
        self._loop_task = asyncio.create_task(self._reconcile_loop())
        self.spawn(self.renewals.run())

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        # Wait for them to end (bounded): a task still running would use the
        # backends closed next.
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_WAIT_S)
        for closer in (self.bus.close, self.registry.close, self.presence.close, self.leases.close):
            try:
                await closer()
            except Exception:
                log.warning("close failed", exc_info=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """SIGTERM: stop taking work, drop presence at once, keep leases so
        clients can resume on another replica, close sockets with 1012."""
        self.draining = True
        for peer in self.sockets:
            for note_id in self.sockets.subscriptions(peer):
                try:
                    await self.presence.remove(note_id, peer.session)
                    await self.publish(events.presence(note_id))
                except Exception:
                    log.warning("presence removal on drain failed", extra={"note": note_id})
            peer.close_soon(CloseCode.SERVER_RESTART, "server restarting")

    # -- sessions ---------------------------------------------------------------
    async def attach(self, peer: Peer, resume: str | None) -> tuple[bool, list[dict[str, Any]]]:
        """Register a socket that said hello; returns (resumed, leases).

        Raises ``Forbidden`` when ``resume`` names another user's session."""
        record = SessionRecord(
            session=peer.session, user=peer.user, replica=self.replica_id,
            socket=peer.socket_id, connected_at=utc_now(),
        )  # fmt: skip
        resumed = False
        if resume:
            old = await self.registry.get(resume)
            if old is not None and old.user.id != peer.user.id:
                raise Forbidden("that session belongs to someone else")
            if old is not None:
                peer.session = resume
                record = SessionRecord(resume, peer.user, self.replica_id, peer.socket_id,
                                       old.connected_at)  # fmt: skip
                resumed = True
        # Kicks, resume hand-overs and access changes of this session and user
        # are heard from now on (the socket is not reachable before it).
        await self.follow(events.session_topic(peer.session), events.user_topic(peer.user.id))
        previous = await self.registry.claim(record, self.settings.lease_ttl_ms)
        if resumed and previous is not None and previous.socket != peer.socket_id:
            await self._supersede(peer.session, previous)
        if resumed:
            try:
                await self._adopt_leases(peer.session, peer.user)
            except BaseException:
                # A resume that fails half way leaves nothing of it here; the
                # client tries again and adopts what is still its own.
                self.tokens.forget_session(peer.session)
                raise
        # Registered last: a socket whose hello failed is never a peer here.
        for note_id in self.sockets.add(peer):  # a stale socket of the session here
            self._forget_note(note_id)
        self._count_subscriptions()
        self.metrics.ws_connections.set(len(self.sockets))
        return resumed, self.tokens.leases_of(peer.session)

    async def _supersede(self, session: str, previous: SessionRecord) -> None:
        """The session moved to a new socket: the old one closes with 4409."""
        local = self.sockets.get(session)
        if local is not None and local.socket_id == previous.socket:
            self._drop_subscriptions(local)
            self.sockets.remove(local)
            local.close_soon(CloseCode.SUPERSEDED, "session resumed elsewhere")
        if previous.replica != self.replica_id:
            await self.publish(events.moved(session, previous.socket))

    async def _adopt_leases(self, session: str, user: User) -> None:
        """Leases and queue places belong to the session (rule 9): a resumed
        session keeps both, whichever replica served it before."""
        for note_id in await self.registry.notes(session):
            view = await self.leases.view(note_id)
            if isinstance(view, LeaseView) and view.session == session:
                # The lease counts only if the database gave this session its
                # fence (rule 1): a grant whose commit failed may have left
                # its lease behind.
                if await self.store.get_token(note_id) != (view.fence, session):
                    await self.leases.drop(note_id, session, view.fence)
                elif await self.leases.renew(note_id, session, view.fence):
                    self.tokens.adopt_hold(session, note_id, view.fence)
                    continue
            elif await self.leases.renew_waiter(note_id, session):
                self.tokens.adopt_wait(session, note_id, user)
                continue
            await self.registry.remove_note(session, note_id)

    async def detach(self, peer: Peer) -> None:
        """The socket closed, whatever the close code. Presence goes at once;
        tokens and queue places stay with the session until their leases run
        out, so a reload or a reconnect resumes them. Only an explicit
        ``release`` hands a token over at once."""
        subscribed = self.sockets.subscriptions(peer)
        self._drop_subscriptions(peer)
        self.renewals.forget(peer)
        if not self.sockets.remove(peer):
            return  # superseded by a resumed socket: nothing of the session is ours
        self.metrics.ws_connections.set(len(self.sockets))
        for note_id in subscribed:
            try:
                if await self.presence.remove(note_id, peer.session):
                    await self.publish(events.presence(note_id))
            except Exception:
                log.warning("presence removal failed", extra={"note": note_id})
        self.tokens.forget_waits(peer.session)

    def _drop_subscriptions(self, peer: Peer) -> None:
        for note_id in self.sockets.subscriptions(peer):
            if self.sockets.unsubscribe(peer, note_id):
                self._forget_note(note_id)
        self._count_subscriptions()

    def _count_subscriptions(self) -> None:
        self.metrics.ws_subscriptions.set(self.sockets.subscription_count())

    def _forget_note(self, note_id: str) -> None:
        """Nobody here watches the note any more: drop what was kept for it."""
        self.sockets.forget_note(note_id)
        self.fanout.forget(note_id)
        self.edits.forget(note_id)

    async def heartbeat(self, peer: Peer) -> list[dict[str, Any]]:
        """The socket's session and presence are renewed in the next batch
        (collab/renewals.py); its write tokens' leases at once."""
        self.renewals.beat(peer)
        return await self.tokens.heartbeat(peer)

    # -- access -----------------------------------------------------------------
    async def access_of(self, user: User, note: Note) -> Access | None:
        grant = None
        if user.role == "user" and note.owner_id != user.id:
            grant = await self.store.get_access(note.id, user.id)
        return note_access(user, note.owner_id, note.visibility, grant)

    async def current_access(self, user: User, note_id: str) -> Access | None:
        """``user``'s access to the note right now, from the store: the stored
        role (a demoted admin is a user at once), owner and grant. Decisions
        that let someone write or read use this, never a socket's cache
        (rule 2). ``NotFound`` for a missing note."""
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFound("no such note")
        if user.role != "guest":
            record = await self.store.get_user(user.id)
            user = record.user() if record is not None else User(user.id, user.name, "guest")
        return await self.access_of(user, note)

    # -- subscriptions -------------------------------------------------------------
    async def subscribe(self, peer: Peer, note_id: str, rid: Rid) -> dict[str, Any] | None:
        """Send the note's snapshot and push its changes from then on; None
        when the snapshot went out, else the reply. Subscribing again is
        answered with ``subscribed`` and sends nothing more: a client that
        repeats it must not make the replica queue the whole note again."""
        have = self.sockets.delivered(peer, note_id)
        if have is not None:
            return frames.subscribed(rid, note_id, have)
        if len(self.sockets.subscriptions(peer)) >= self.settings.max_subscriptions_per_socket:
            self.metrics.rate_limited.labels("subscriptions").inc()
            raise RateLimited(
                f"at most {self.settings.max_subscriptions_per_socket} subscriptions per socket"
            )
        access = await self.current_access(peer.user, note_id)
        if not can_read(access):
            raise Forbidden("you cannot read this note")
        assert access is not None
        peer.access[note_id] = access
        lock = await self.tokens.lock_state(note_id)
        changed = await self.presence.touch(note_id, peer.session, peer.user,
                                            self.settings.lease_ttl_ms)  # fmt: skip
        viewers = await self.fanout.viewers(note_id)
        # Followed before the snapshot is read: every edit after the read
        # reaches this replica (rule 7).
        await self.follow(events.note_topic(note_id))
        async with self.edits.serialised(note_id):
            # The snapshot is read from the primary under the note's delivery
            # lock: no push can slip between it and the registration, and it
            # holds every edit acknowledged through any replica (rule 7).
            fresh = await self.store.get_note(note_id)
            if fresh is None:
                raise NotFound("no such note")
            # Registered only now, with no await since the read: an edit
            # event is then either in the snapshot or pushed after it.
            self.sockets.subscribe(peer, note_id, fresh.version)
            guest = self.fanout.audience(peer)
            peer.push(frames.encode(frames.snapshot(fresh, access, lock, viewers, rid, guest)))
            self.sockets.raise_known(note_id, fresh.version)
            # Viewers already here that have not seen up to this snapshot's
            # version get the versions in between, in order.
            await self.edits.catch_up_locked(note_id)
        self._count_subscriptions()
        if changed:
            await self.publish(events.presence(note_id))
        return None

    async def unsubscribe(self, peer: Peer, note_id: str) -> None:
        if self.sockets.unsubscribe(peer, note_id):
            self._forget_note(note_id)
        if await self.presence.remove(note_id, peer.session):
            await self.publish(events.presence(note_id))
        self._count_subscriptions()

    # -- lock & presence fan-out -----------------------------------------------------
    async def save_revision(self, note_id: str, by_id: str | None) -> None:
        await self.edits.save_revision(note_id, by_id)

    async def lock_changed(self, note_id: str, reason: str, fence: int = 0) -> None:
        await self.publish(events.lock(note_id, reason, fence))

    async def audit(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None:
        try:
            await self.store.record_lock_event(note_id, kind, session, user_id, fence, detail)
        except Exception:
            log.warning("lock audit write failed", extra={"note": note_id, "kind": kind})

    # -- bus ------------------------------------------------------------------------------
    async def follow(self, *topics: str) -> None:
        """Hear these topics (``events.topic``) from now on: returns once the
        bus delivers what is published on them next. A topic another caller
        is already subscribing to is waited for, not assumed live. A bus that
        is down is not waited for: it follows them all again when it
        reconnects, and the resync covers the gap (rule 7)."""
        waits: list[asyncio.Future[None]] = []
        new: list[str] = []
        for topic in topics:
            if topic not in self._followed:
                new.append(topic)
            elif (pending := self._followed[topic]) is not None:
                waits.append(pending)
        if new:
            ready = asyncio.get_running_loop().create_future()
            self._followed.update(dict.fromkeys(new, ready))
            try:
                await self.bus.follow(new)
            except Exception:
                log.warning("bus follow failed", extra={"topics": len(new)})
            finally:
                ready.set_result(None)
                for topic in new:
                    if self._followed.get(topic) is ready:
                        self._followed[topic] = None
        for pending in waits:
            await asyncio.shield(pending)

    def topics_wanted(self) -> set[str]:
        """What this replica must hear: the notes it serves a subscriber,
        holder or waiter of, and the sessions and users it has sockets of."""
        book = self.tokens.book
        notes = {*self.sockets.notes(), *(n for _, n, _ in book.all_holds()),
                 *(n for _, n in book.all_waits())}  # fmt: skip
        return {
            *map(events.note_topic, notes),
            *map(events.session_topic, self.sockets.sessions()),
            *map(events.user_topic, self.sockets.users()),
        }

    async def _retopic(self) -> None:
        """Follow what is wanted and stop following the rest (every tick)."""
        wanted = self.topics_wanted()
        stale = [t for t, pending in self._followed.items() if t not in wanted and pending is None]
        if stale:
            for topic in stale:
                del self._followed[topic]
            try:
                await self.bus.unfollow(stale)
            except Exception:
                log.warning("bus unfollow failed", extra={"topics": len(stale)})
        missing = wanted.difference(self._followed)
        if missing:
            await self.follow(*missing)

    async def publish(self, event: Event) -> None:
        event["replica"] = self.replica_id
        try:
            await self.bus.publish(event)
        except Exception:
            # Pub/sub is at-most-once anyway (rule 7): apply locally and let the
            # reconcile timer bring the other replicas up to date.
            log.warning("bus publish failed", extra={"event": event.get("t")})
            await self.on_event(event, local=True)

    async def on_event(self, event: Event, local: bool = False) -> None:
        kind = event.get("t")
        note_id = str(event.get("note", ""))
        if kind == "edited":
            if int(event.get("tl", 0)) < self.store.timeline:
                # Committed on a timeline a failover left behind: that write
                # may be lost, and versions are counted afresh (rule 10).
                return
            if event.get("replica") != self.replica_id or local:
                frame = event["frame"]
                await self.edits.deliver(note_id, int(event["version"]), frames.encode(frame),
                                    float(event.get("ts", time.time())), "remote")  # fmt: skip
        elif kind == "lock":
            self.fanout.refresh(note_id, "lock")
            await self.tokens.on_lock_event(note_id, str(event.get("reason", "")),
                                            int(event.get("fence", 0)))  # fmt: skip
        elif kind == "presence":
            self.fanout.refresh(note_id, "presence")
        elif kind == "moved":
            await self._on_moved(str(event["session"]), str(event["socket"]))
        elif kind == "access":
            await self.revocations.on_access(str(event["user"]), event.get("note"))
        elif kind == "visibility":
            await self.revocations.on_visibility(note_id)
        elif kind == "kick":
            peer = self.sockets.get(str(event["session"]))
            if peer is not None:
                peer.close_soon(CloseCode.FORBIDDEN, "kicked by an administrator")
        elif kind == "signed_out":
            for peer in self.sockets.of_user(str(event["user"])):
                self.spawn(peer.recheck_sign_in())
        elif kind == "caret":
            self.handoff.on_caret(event)
        elif kind == "edit_request":
            self.handoff.on_request(event)
        elif kind == "deleted":
            for peer in self.sockets.viewers(note_id):
                peer.push(frames.encode(frames.deleted(note_id)))
                peer.access.pop(note_id, None)
            self._forget_note(note_id)

    async def _on_moved(self, session: str, socket: str) -> None:
        peer = self.sockets.get(session)
        if peer is None:
            # The session's old socket here is already gone: its leases are
            # served elsewhere now, so stop tracking (and expiring) them here.
            self.tokens.forget_session(session)
        elif peer.socket_id == socket:
            self._drop_subscriptions(peer)
            self.sockets.remove(peer)
            self.tokens.forget_session(session)
            peer.close_soon(CloseCode.SUPERSEDED, "session resumed elsewhere")

    # -- reconcile ---------------------------------------------------------------------------
    async def resync(self) -> None:
        """The bus came back: we may have missed anything (rule 7)."""
        self.metrics.bus_resyncs.inc()
        await self._reconcile(full=True)

    async def _reconcile_loop(self) -> None:
        period = min(self.settings.reconcile_interval_s, self.settings.lease_ttl_ms / 3000.0)
        tick = 0
        while True:
            await asyncio.sleep(min(1.0, period))
            tick += 1
            try:
                await self._check_timeline()
                await self.tokens.expire_overdue()
                await self.handoff.tick()
                await self._retopic()
                if tick * min(1.0, period) >= period:
                    tick = 0
                    await self._reconcile(full=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reconcile failed", exc_info=True)

    async def share_timeline(self) -> None:
        """Rule 10: the highest database timeline is shared through the lease
        store, so a replica that starts (or lags) after a failover refuses an
        old primary even though it never saw the new one itself."""
        shared = await self.leases.record_timeline(self.store.timeline)
        await self.store.raise_timeline_floor(shared)

    async def _check_timeline(self) -> None:
        """Rule 10: the database failed over; a fence advance acked by the old
        primary may be gone, so every lease is void. Its Redis lease goes too,
        or a re-acquire would hand back the same fence without advancing it on
        the new primary. Runs on every tick."""
        await self.share_timeline()
        await self._resnapshot_pending()
        timeline_changes = self.store.timeline_changes
        if timeline_changes <= self._timeline_changes:
            return
        self._timeline_changes = timeline_changes
        log.warning("database timeline changed; all leases are void (rule 10)")
        held = [(s, n, h.fence) for s, notes in self.tokens.held.items()
                for n, h in notes.items()]  # fmt: skip
        await self.tokens.on_reset()
        self._resnapshot.update(self.sockets.notes())
        await self._resnapshot_pending()
        for session, note_id, fence in held:
            try:
                await self.leases.drop(note_id, session, fence)
            except Exception:  # the lease then simply expires
                log.warning("could not drop a voided lease", extra={"note": note_id})

    async def _resnapshot_pending(self) -> None:
        """Subscribers of notes not yet sent a fresh snapshot since a failover;
        a failure leaves the note pending for the next tick."""
        for note_id in list(self._resnapshot):
            if not self.sockets.watched(note_id):
                self._resnapshot.discard(note_id)
                continue
            try:
                await self.edits.resnapshot(note_id)
                self._resnapshot.discard(note_id)
            except Exception:
                log.warning("resnapshot after failover failed", extra={"note": note_id})

    async def _reconcile(self, full: bool) -> None:
        if full:  # push everything again even if it looks unchanged
            self.fanout.clear()
        if await self.leases.check_epoch():
            log.warning("lock service lost its data; all leases are void (rule 8)")
            await self.tokens.on_reset()
        await self.tokens.poll()
        await self.tokens.recheck_access()
        for note_id in self.sockets.notes():
            self.fanout.refresh(note_id, "lock")
            self.fanout.refresh(note_id, "presence")
            note = await self.store.get_note(note_id)
            if note is None:
                continue
            if self.sockets.watched(note_id):
                # Also when the version is known here: a catch-up that failed
                # half way left sockets behind it (rule 7).
                self.sockets.raise_known(note_id, note.version)
                await self.edits.catch_up(note_id)
