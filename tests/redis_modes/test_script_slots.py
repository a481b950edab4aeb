"""Every Lua script touches one Redis Cluster slot (docs/design.md, rule 11).

No Redis here: the Redis backends are given a recording client, every
operation is called for representative notes, sessions and users, and the slot
of every key each script receives is computed as Redis does (CRC16 of the hash
tag, ``redis.crc.key_slot``). Key prefixes passed as arguments (a script names
a waiter's liveness key ``<prefix><session>`` from one) count as keys: their
hash tag is inside the prefix. Scripts that would touch two slots fail with
CROSSSLOT on a cluster; this finds them without one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.crc import key_slot

from collab.leases import scripts as lease_scripts
from collab.leases.redis import RedisLeaseStore
from collab.presence.redis import RedisPresenceStore
from collab.registry.base import SessionRecord
from collab.registry.redis import RedisSessionRegistry
from collab.types import User

PREFIX = "collab"
NOTES = ("n1", "0b7c1f0e-1c1e-4c1e-9b1e-1c1e1c1e1c1e", "x" * 40, "note with spaces")
SESSIONS = ("s-1", "2f9a0c6e7d", "weird{brace", "weird}brace", "{a}b")
USER = User("u-1", "Ann", "user")


@dataclass
class Call:
    source: str
    keys: list[str]
    args: list[Any]

    def touched(self) -> list[str]:
        """The keys, and every argument naming keys under the prefix."""
        named = [a for a in self.args if isinstance(a, str) and a.startswith(PREFIX + ":")]
        return [*self.keys, *named]


@dataclass
class Recorder:
    """Stands in for the Redis client: records script calls, answers every
    other command with an empty reply."""

    calls: list[Call] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)

    def register_script(self, source: str) -> Any:
        self.registered.append(source)

        async def run(keys: list[str] = (), args: list[Any] = ()) -> Any:  # type: ignore[assignment]
            self.calls.append(Call(source, list(keys), list(args)))
            return _reply(source)

        run.script = source  # type: ignore[attr-defined]
        return run

    def __getattr__(self, name: str) -> Any:
        async def anything(*_a: Any, **_k: Any) -> Any:
            return None

        return anything


def _reply(source: str) -> Any:
    if source == lease_scripts.ACQUIRE:
        return [1, 7, 0, 0]
    if source == lease_scripts.VIEW:
        return ["", -2, "", "", ""]
    if "HGETALL" in source or "local out = {}" in source:
        return []  # the registry's claim, presence's viewers
    return 1


def slots_of(call: Call) -> set[int]:
    return {key_slot(key.encode()) for key in call.touched()}


def cross_slot(calls: list[Call]) -> list[str]:
    """Every call whose keys fall in more than one slot, described."""
    return [
        f"{c.source.strip().splitlines()[0][:60]!r}: {c.touched()} -> slots {sorted(slots_of(c))}"
        for c in calls
        if len(slots_of(c)) > 1
    ]


def _declared_keys(source: str) -> int:
    return max((int(n) for n in re.findall(r"KEYS\[(\d+)\]", source)), default=0)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    for module in ("collab.leases.redis", "collab.presence.redis", "collab.registry.redis"):
        monkeypatch.setattr(f"{module}.open_redis", lambda *_a, **_k: rec)
    return rec


async def _exercise(rec: Recorder) -> None:
    leases = RedisLeaseStore("redis://x", prefix=PREFIX, ttl_ms=3000, lock_delay_ms=2000)
    presence = RedisPresenceStore("redis://x", prefix=PREFIX)
    registry = RedisSessionRegistry("redis://x", PREFIX)
    await registry.start()
    for note in NOTES:
        for session in (s for s in SESSIONS if ":" not in s):
            await leases.try_acquire(note, session, USER, wait=True)
            await leases.try_acquire(note, session, USER, wait=False)
            await leases.renew(note, session, 7)
            await leases.renew_waiter(note, session)
            await leases.release(note, session, 7)
            await leases.drop(note, session, 7)
            await leases.give_back(note, session, 7, USER)
            await leases.leave_queue(note, session)
            await leases.grantable_in_ms(note, session)
            await presence.touch(note, session, USER, 3000)
            await presence.remove(note, session)
        await leases.raise_fence(note, 9)
        await leases.hold_back(note, 5000)
        await leases.forget_note(note)
        await leases.revoke(note)
        await leases.view(note)
        await presence.viewers(note)
    await leases.record_timeline(3)
    for session in SESSIONS:
        record = SessionRecord(session, USER, "r1", "sock-1", "2026-01-01T00:00:00Z")
        await registry.claim(record, 3000)
        await registry.touch(session, "sock-1", 3000)
        await registry.add_note(session, NOTES[0])
        await registry.forget(session, "sock-1")


async def test_no_script_touches_two_slots(recorder: Recorder) -> None:
    await _exercise(recorder)
    assert recorder.calls
    assert cross_slot(recorder.calls) == []


async def test_every_script_was_exercised_with_the_keys_it_reads(recorder: Recorder) -> None:
    """A script not called above would escape the slot check; one reading a
    ``KEYS[i]`` it is not given would read nil on one server and fail on a
    cluster."""
    await _exercise(recorder)
    called = {c.source for c in recorder.calls}
    assert set(recorder.registered) <= called
    for call in recorder.calls:
        assert _declared_keys(call.source) <= len(call.keys), call.source.strip()[:80]


def test_the_check_sees_a_script_given_two_notes_keys() -> None:
    """The check itself can fail: keys of two notes (or a global key next to
    a note's) are two slots."""
    two_notes = Call("x", ["collab:{n1}:lease", "collab:{n2}:lease"], [])
    with_global = Call("x", ["collab:{n1}:lease"], ["collab:sessions"])
    untagged = Call("x", ["collab:session:s-1", "collab:session:s-1:notes"], [])
    assert len(cross_slot([two_notes, with_global, untagged])) == 3
