"""A simulated browser tab: one socket at a time to some replica, speaking to
the hub exactly as ``collab/session.py`` does (one request at a time, with
network latency both ways), heartbeating, taking and releasing the token,
typing, retrying what got no answer with the same op id, resuming its session
elsewhere when its socket dies, and sometimes stalling past its lease (then
writing with its old fence, as a stalled writer would)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from collab.errors import CollabError
from collab.messages import Edit
from collab.types import Access, Change, EditPayload, User
from tests.sim.history import History

if TYPE_CHECKING:
    from collab.hub import Hub
    from tests.sim.world import World


class SocketGone(Exception):
    """The socket died while a request was in flight."""


class SimPeer:
    """Implements ``collab.peer.Peer``. Hashes by creation order, so sets of
    peers iterate the same way in every run of a seed."""

    def __init__(self, seq: int, user: User, history: History) -> None:
        self.seq = seq
        self.socket_id = uuid.uuid4().hex
        self.session = uuid.uuid4().hex
        self.user = user
        self.access: dict[str, Access] = {}
        self.closed: tuple[int, str] | None = None
        self.cut = False  # the client is gone; the server has not noticed
        self.inbox: list[dict[str, Any]] = []
        self.have: dict[str, int] = {}  # what the client has, from what it was pushed
        self._history = history

    def __hash__(self) -> int:
        return self.seq

    def push(self, frame: str) -> None:
        msg = orjson.loads(frame)
        self._history.pushed(self.session, msg)
        if self.cut or self.closed is not None:
            return
        self._check_order(msg)
        self.inbox.append(msg)

    def take_ack(self, op: str) -> dict[str, Any] | None:
        """The ack of ``op`` pushed to this socket (a new edit's ack is
        pushed ahead of its fan-out, not returned), taken out of the inbox."""
        for i, msg in enumerate(self.inbox):
            if msg.get("type") == "ack" and msg.get("op") == op:
                return self.inbox.pop(i)
        return None

    def close_soon(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)

    async def recheck_sign_in(self) -> None:
        """The simulation's tabs never sign out."""

    def _check_order(self, msg: dict[str, Any]) -> None:
        """Rule 7, as the client sees it: versions of a note arrive one by one."""
        kind, note = msg.get("type"), msg.get("note")
        if kind == "snapshot":
            self.have[note] = int(msg["version"])
        elif kind == "edited":
            self._next(note, int(msg["version"]))
        elif kind == "changes":
            for edit in msg["edits"]:
                self._next(note, int(edit["version"]))

    def _next(self, note: str, version: int) -> None:
        have = self.have.get(note)
        if have is None:
            self._history.fail(f"socket {self.seq} got v{version} of {note[:6]} before a snapshot")
        elif version != have + 1:
            self._history.fail(f"socket {self.seq} got v{version} of {note[:6]} after v{have}")
        self.have[note] = version


class SimClient:
    def __init__(self, world: World, index: int, user: User, notes: list[str]) -> None:
        self.world = world
        self.index = index
        self.user = user
        self.notes = notes
        self.rng = random.Random(world.rng.random())
        self.session: str | None = None
        self.hub: Hub | None = None
        self.peer: SimPeer | None = None
        self.held: dict[str, int] = {}
        self.pending: dict[str, Edit] = {}  # note -> edit sent without an answer
        self.rids = itertools.count(1)
        self.dead = False
        self.quiet = False  # end of run: stop taking the token and typing
        self.last_heartbeat = -1.0
        self.idle_until = -1.0  # holds its tokens but types nothing until then
        self.walked_away = False  # while idle: ignores the idle warning

    # -- the socket ------------------------------------------------------------------
    async def connect(self) -> None:
        hub = self.world.pick_hub(self.rng)
        peer = SimPeer(next(self.world.sockets), self.user, self.world.history)
        await self.world.net()
        try:
            _, leases = await hub.attach(peer, self.session)
        except CollabError:
            return
        if self.dead or not self.world.running:  # the tab closed meanwhile
            peer.cut = True
            self.world.spawn(hub.detach(peer))
            return
        self.hub, self.peer, self.session = hub, peer, peer.session
        self.world.history.sessions[peer.session] = self.user.id
        self.world.history.log(f"c{self.index} attached {peer.seq} to {hub.replica_id}")
        self.held = {lease["note"]: int(lease["fence"]) for lease in leases}
        for note in self.notes:
            await self.request(lambda h, p, n=note: h.subscribe(p, n, next(self.rids)))

    async def request(self, call: Any) -> Any:
        """One frame and its answer, as the socket shell runs it."""
        hub, peer = self.hub, self.peer
        if hub is None or peer is None or peer.closed or peer.cut:
            raise SocketGone()
        await self.world.net()
        if peer.closed or peer.cut or hub not in self.world.live_hubs():
            raise SocketGone()
        try:
            reply = await call(hub, peer)
        except CollabError as exc:
            reply = exc.wire(None)
        await self.world.net()
        if peer.closed or peer.cut:
            raise SocketGone()
        return reply

    def drop_socket(self, tell_server: bool) -> None:
        hub, peer = self.hub, self.peer
        self.hub = self.peer = None
        if peer is None or hub is None:
            return
        peer.cut = True
        if tell_server:
            self.world.spawn(hub.detach(peer))
        else:  # half-open: the server notices much later, or never
            self.world.later(self.rng.uniform(0.5, 3.0), hub.detach(peer))

    # -- the tab ---------------------------------------------------------------------
    async def run(self) -> None:
        while not self.dead and self.world.running:
            try:
                if self.peer is None or self.peer.closed or self.peer.cut:
                    self.drop_socket(tell_server=True)
                    await asyncio.sleep(self.rng.uniform(0.01, 0.2))
                    await self.connect()
                    continue
                await self.step()
            except SocketGone:
                self.drop_socket(tell_server=False)
            await asyncio.sleep(self.rng.uniform(0.005, 0.04))

    async def step(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.last_heartbeat >= self.world.heartbeat_s:
            self.last_heartbeat = now
            reply = await self.request(lambda h, p: h.heartbeat(p))
            if isinstance(reply, list):
                self.held = {lease["note"]: int(lease["fence"]) for lease in reply}
        self.read_inbox()
        note = self.rng.choice(self.notes)
        assert self.peer is not None
        if note not in self.peer.have:  # its subscribe got no answer: again
            await self.request(lambda h, p: h.subscribe(p, note, next(self.rids)))
            return
        if note in self.pending:
            await self.send_edit(self.pending[note])
        elif note in self.held and (self.quiet or now < self.idle_until):
            return  # holds it and types nothing: the idle clock runs
        elif note in self.held:
            if self.rng.random() < 0.15:
                fence = self.held.pop(note)
                await self.request(lambda h, p: h.tokens.release(p, note, fence, 0))
            else:
                await self.type_into(note)
        elif not self.quiet and self.rng.random() < 0.2:
            reply = await self.request(lambda h, p: h.tokens.acquire(p, note, True, 0))
            self.on_frame(reply)

    def read_inbox(self) -> None:
        peer = self.peer
        if peer is None:
            return
        frames, peer.inbox = peer.inbox, []
        for msg in frames:
            self.on_frame(msg)

    def on_frame(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        kind, note = msg.get("type"), msg.get("note")
        if kind == "granted":
            self.held[note] = int(msg["fence"])
            self.world.history.granted(self.session or "", note, int(msg["fence"]), self.user.id)
        elif kind == "lease_lost":
            self.held.pop(note, None)
        elif kind == "idle_warning" and msg["handoff_in_ms"] is not None:
            self.on_idle_warning(note)

    def on_idle_warning(self, note: str) -> None:
        """At the keyboard, half the time "keep editing" is pressed; someone
        who walked away does not see the warning."""
        if not self.walked_away and self.rng.random() < 0.5:
            self.world.spawn(self.keep(note))

    async def keep(self, note: str) -> None:
        """ "Keep editing", pressed by someone idle at the keyboard."""
        with contextlib.suppress(SocketGone):
            await self.request(
                lambda h, p: self._arrive(p, note, lambda: h.handoff.keep(p, note, 0))
            )

    async def _arrive(self, peer: SimPeer, note: str, call: Any) -> Any:
        """An edit or ``keep`` reaches the replica now: recorded as activity."""
        self.world.history.active(peer.session, note)
        reply = call()
        return await reply if asyncio.iscoroutine(reply) else reply

    def idle(self, seconds: float, walked_away: bool) -> None:
        self.world.history.log(f"c{self.index} idles {seconds:.2f}s away={walked_away}")
        self.idle_until = asyncio.get_running_loop().time() + seconds
        self.walked_away = walked_away

    async def type_into(self, note: str) -> None:
        assert self.peer is not None
        base = self.peer.have.get(note)
        if base is None:
            return
        change = Change(self.rng.randint(0, 0), 0, self.rng.choice("abc"))
        edit = Edit(note, self.held[note], base, uuid.uuid4().hex, EditPayload(changes=(change,)))
        self.pending[note] = edit
        await self.send_edit(edit)

    async def send_edit(self, edit: Edit) -> None:
        async def call(hub: Hub, peer: SimPeer) -> dict[str, Any]:
            reply = await self._arrive(peer, edit.note, lambda: hub.edits.edit(peer, edit))
            reply = reply if reply is not None else peer.take_ack(edit.op)
            if reply is None:  # pushed to a socket cut meanwhile: never arrives
                raise SocketGone()
            return reply

        reply = await self.request(call)
        code = reply.get("error", {}).get("code") if "error" in reply else reply.get("code")
        if reply.get("type") == "ack":
            del self.pending[edit.note]
            self.world.history.acked(self.session or "", edit.note, edit.op, int(reply["version"]))
            assert self.peer is not None
            self.peer.have[edit.note] = max(self.peer.have.get(edit.note, 0), int(reply["version"]))
        elif code == "unavailable":
            return  # no answer we can trust: send the same op again (idempotent)
        else:
            del self.pending[edit.note]
            if code in ("fenced", "forbidden"):
                self.held.pop(edit.note, None)
            elif code == "stale":
                peer = self.peer
                assert peer is not None
                since = peer.have.get(edit.note, 0)
                await self.request(lambda h, p: h.edits.sync(p, edit.note, since, 0))

    # -- faults --------------------------------------------------------------------------
    async def stall(self, seconds: float) -> None:
        """GC pause, laptop lid: nothing for a while, then carry on as if
        nothing happened (the old fence included)."""
        self.world.history.log(f"c{self.index} stalls {seconds:.2f}s")
        self.dead = True
        await asyncio.sleep(seconds)
        self.dead = False
        self.world.spawn(self.run())
