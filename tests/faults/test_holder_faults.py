"""Paused and killed holders and replicas (docs/reliability.md, failure model)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.faults.harness import HANDOFF_S, TTL_S, World, acquire, redis_key, write
from tests.support.client import new_op

REPO = Path(__file__).resolve().parents[2]


async def _read_line(proc: subprocess.Popen[str], limit_s: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), limit_s)
    assert line, f"child exited (code {proc.poll()})"
    return line.strip()


def _spawn_holder(url: str, token: str, note: str, name: str) -> tuple[subprocess.Popen[str], Path]:
    """Start ``pausable_client`` holding ``note``; its events go to a temp file."""
    fd, events = tempfile.mkstemp(prefix="collab-child-", suffix=".jsonl")
    os.close(fd)
    args = [sys.executable, "-m", "tests.faults.pausable_client", url, token, note, events, name]
    child = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    return child, Path(events)


def _reap(child: subprocess.Popen[str], events: Path, world: World) -> None:
    """Stop the child if still running and merge its events into the history."""
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
    world.history.merge_jsonl(events)
    events.unlink(missing_ok=True)


@pytest.mark.parametrize("new_holder_writes", [True, False], ids=["writes", "idle"])
async def test_paused_holder_process_is_fenced_on_resume(
    world: World, new_holder_writes: bool
) -> None:
    """SIGSTOP the holder past TTL, let another client take the token,
    SIGCONT: the holder's first act, a write under its old fence, is refused."""
    await world.start()
    note, (u1, u2) = await world.writers(2)
    child, events = _spawn_holder(world.replicas[0].ws_url, u1.token or "", note, "paused")
    try:
        holding = await _read_line(child, 15)
        _, fence, _ = holding.split()
        other = await world.client("other", u2, 1, note)
        queued = await other.request("acquire", note=note)
        assert queued["type"] == "queued"
        os.kill(child.pid, signal.SIGSTOP)
        world.history.mark("paused", "paused")
        stopped = time.monotonic()
        granted = await other.wait_for(
            lambda f: f.get("type") == "granted" and f.get("rid") == queued["rid"], HANDOFF_S + 2
        )
        assert granted["fence"] > int(fence)
        assert time.monotonic() - stopped <= HANDOFF_S + 0.5
        if new_holder_writes:
            assert (await write(other, note, granted["fence"], "[other-1]"))["type"] == "ack"
        os.kill(child.pid, signal.SIGCONT)
        world.history.mark("paused", "resumed")
        assert await _read_line(child, 10) == "stale error fenced"
    finally:
        _reap(child, events, world)
    await world.check([note])


async def test_paused_replica_with_edits_in_flight_loses_and_doubles_nothing(
    world: World,
) -> None:
    """The holder's replica is SIGSTOPped with an edit in flight; the client
    resumes its session on the other replica and retries the same op; the
    paused replica then wakes up and processes the old frame too."""
    await world.start()
    note, (u1,) = await world.writers(1)
    first = await world.client("h-r0", u1, 0, note)
    fence = await acquire(first, note)
    for i in range(5):
        assert (await write(first, note, fence, f"[r0-{i}]"))["type"] == "ack"
    op = new_op()
    base = 5
    world.replicas[0].signal(signal.SIGSTOP)
    world.history.mark("h-r0", "paused")
    first.stop_heartbeats()
    try:
        await first.send(
            {
                "type": "edit",
                "rid": "inflight",
                "note": note,
                "fence": fence,
                "base": base,
                "op": op,
                "changes": [{"at": 0, "del": 0, "ins": "[inflight]"}],
            }
        )
        await asyncio.sleep(0.3)
        moved = await world.client("h-r1", u1, 1, note, resume=first.session)
        assert moved.welcome["resumed"] is True
        assert [lease["fence"] for lease in moved.welcome["leases"]] == [fence]
        retry = await moved.request(
            "edit",
            note=note,
            fence=fence,
            base=base,
            op=op,
            changes=[{"at": 0, "del": 0, "ins": "[inflight]"}],
        )
        assert retry["type"] == "ack" and retry["version"] == base + 1
        for i in range(5):
            assert (await write(moved, note, fence, f"[r1-{i}]"))["type"] == "ack"
    finally:
        world.replicas[0].signal(signal.SIGCONT)
    # The woken replica either closes the old socket (4409) before reading
    # the buffered frame, or handles it: an ack of the original version (a
    # duplicate op) or a refusal -- never a second application.
    await first.wait_closed(5)
    assert first.closed is not None and first.closed[0] == 4409
    late = [f for f in first.frames if f.get("rid") == "inflight"]
    assert all(f["type"] == "error" or f["version"] == base + 1 for f in late), late
    await asyncio.sleep(TTL_S)
    assert (await write(moved, note, fence, "[after]"))["type"] == "ack"
    await world.check([note])


async def test_replica_killed_between_grant_and_fence_advance(world: World) -> None:
    """Replica 0 stalls after the Redis grant (fault hook) and is killed
    there: that fence never reaches PostgreSQL, no one can write with it, and
    the next waiter gets the token within TTL + lock-delay + 1 s."""
    await world.start(only={0: {"COLLAB_FAULT_STALL_AFTER_GRANT_S": "5"}})
    note, (u1, u2) = await world.writers(2)
    doomed = await world.client("doomed", u1, 0, note)
    waiter = await world.client("waiter", u2, 1, note)
    await doomed.send({"type": "acquire", "rid": "stalled", "note": note})
    r = aioredis.Redis(port=world.redis.port, decode_responses=True)
    try:
        for _ in range(50):
            if await r.get(redis_key(world.prefix, note, "lease")):
                break
            await asyncio.sleep(0.02)
        lost_fence = int(await r.get(redis_key(world.prefix, note, "fence")) or 0)
        assert lost_fence >= 1
    finally:
        await r.aclose()
    queued = await waiter.request("acquire", note=note)
    assert queued["type"] == "queued"
    world.replicas[0].kill()
    world.history.mark("doomed", "dead")
    killed = time.monotonic()
    granted = await waiter.wait_for(
        lambda f: f.get("type") == "granted" and f.get("rid") == queued["rid"], HANDOFF_S + 2
    )
    assert granted["fence"] > lost_fence
    assert time.monotonic() - killed <= HANDOFF_S
    forged = await waiter.request(
        "edit",
        note=note,
        fence=lost_fence,
        base=0,
        op=new_op(),
        changes=[{"at": 0, "del": 0, "ins": "[forged]"}],
    )
    assert forged["code"] == "fenced"
    assert (await write(waiter, note, granted["fence"], "[waiter-1]"))["type"] == "ack"
    await world.check([note])
    audit = world.history.final[note].audit
    assert lost_fence not in {a.fence for a in audit if a.kind == "granted"}
