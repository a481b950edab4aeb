"""The write token: acquire/release round trips, hand-off after a clean
release to a waiter on another replica, and take-over after the holder's
socket dies (no close frame; the lease has to expire, then lock-delay).

These are a few requests per second, so they run in the harness process
itself; its CPU is metered as ``driver_parent``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loadtests.harness import stats
from loadtests.harness.bench import Bench, cores_summary
from loadtests.harness.peerclient import opener
from loadtests.harness.wsclient import Frame, ProtocolError, ws_url


class Grants:
    """Collects deferred ``granted`` pushes with their arrival time. The first
    grant with a fence above the last one seen counts (like a client keyed
    by note); a repeat of a fence already seen is counted as ``duplicate``,
    a grant echoing another rid than the pending acquire's as ``wrong_rid``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Frame, int]] = asyncio.Queue()
        self.rid: str | None = None
        self.fence = 0
        self.duplicate = 0
        self.wrong_rid = 0

    def expect(self, queued: Frame, fence_seen: int) -> None:
        self.rid = str(queued["rid"])
        self.fence = max(self.fence, fence_seen)

    def __call__(self, frame: Frame, now_ns: int) -> None:
        if frame.get("type") != "granted":
            return
        if int(frame["fence"]) <= self.fence:
            self.duplicate += 1
            return
        if frame.get("rid") != self.rid:
            self.wrong_rid += 1
        self.fence = int(frame["fence"])
        self.queue.put_nowait((frame, now_ns))

    async def next(self, within_s: float) -> tuple[Frame, int]:
        return await asyncio.wait_for(self.queue.get(), within_s)


async def _round_trips(
    url: str, token: str, note: str, rounds: int, proto: str = "collab"
) -> tuple[list[float], list[float]]:
    conn = await opener(proto)(url, token)
    await conn.request("subscribe", note=note)
    acquire, release = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        granted = await conn.request("acquire", note=note, wait=False)
        t1 = time.perf_counter()
        if granted.get("type") != "granted":
            raise ProtocolError(f"acquire refused: {granted}")
        released = await conn.request("release", note=note, fence=granted["fence"])
        t2 = time.perf_counter()
        if released.get("type") != "released":
            raise ProtocolError(f"release refused: {released}")
        acquire.append((t1 - t0) * 1000)
        release.append((t2 - t1) * 1000)
    await conn.close()
    return acquire, release


async def _handoffs(
    urls: tuple[str, str],
    tokens: tuple[str, str],
    note: str,
    rounds: int,
    missed_after_s: float,
    proto: str = "collab",
) -> tuple[list[float], dict[str, int]]:
    """Two sessions on two replicas pass the token back and forth: the waiter
    queues, the holder releases, the waiter's deferred ``granted`` arrives.
    A grant not seen within ``missed_after_s`` (TTL + lock-delay + 1 s, the
    take-over bound) is a missed hand-off: counted, not sampled."""
    grants = (Grants(), Grants())
    conns = [await opener(proto)(urls[i], tokens[i], grants[i]) for i in (0, 1)]
    for c in conns:
        await c.request("subscribe", note=note)
    first = await conns[0].request("acquire", note=note, wait=False)
    if first.get("type") != "granted":
        raise ProtocolError(f"acquire refused: {first}")
    fence, holder = first["fence"], 0
    samples: list[float] = []
    missed = 0
    for _ in range(rounds):
        waiter = 1 - holder
        queued = await conns[waiter].request("acquire", note=note, wait=True)
        if queued.get("type") != "queued":
            raise ProtocolError(f"expected queued, got {queued}")
        grants[waiter].expect(queued, fence)
        t0 = time.time_ns()
        await conns[holder].request("release", note=note, fence=fence)
        try:
            granted, at = await grants[waiter].next(within_s=missed_after_s)
        except TimeoutError:
            # A lost wake-up: count it, then ask again as a client would.
            missed += 1
            granted = await conns[waiter].request("acquire", note=note, wait=True)
            if granted.get("type") == "queued":
                grants[waiter].expect(granted, fence)
                granted, _ = await grants[waiter].next(within_s=30)
        else:
            samples.append((at - t0) / 1e6)
        fence, holder = granted["fence"], waiter
    await conns[holder].request("release", note=note, fence=fence)
    await asyncio.sleep(0.5)  # let late duplicate pushes arrive to be counted
    for c in conns:
        await c.close()
    return samples, {
        "duplicate": sum(g.duplicate for g in grants),
        "wrong_rid": sum(g.wrong_rid for g in grants),
        "missed_handoffs": missed,
    }


async def _takeover(
    urls: tuple[str, str], tokens: tuple[str, str], note: str, limit_s: float, proto: str = "collab"
) -> float:
    """The holder's socket is aborted (no close frame, heartbeats stop);
    returns ms until the waiter on the other replica is granted."""
    grants = Grants()
    holder = await opener(proto)(urls[0], tokens[0])
    waiter = await opener(proto)(urls[1], tokens[1], grants)
    for c in (holder, waiter):
        await c.request("subscribe", note=note)
    granted = await holder.request("acquire", note=note, wait=False)
    if granted.get("type") != "granted":
        raise ProtocolError(f"acquire refused: {granted}")
    queued = await waiter.request("acquire", note=note, wait=True)
    if queued.get("type") != "queued":
        raise ProtocolError(f"expected queued, got {queued}")
    grants.expect(queued, granted["fence"])
    # A heartbeat right before the crash: the lease then has its full TTL left,
    # so the figure is the worst case (TTL + lock-delay + detection).
    await holder.request("heartbeat")
    t0 = time.time_ns()
    holder.abort()
    _, at = await grants.next(within_s=limit_s + 10)
    await waiter.close()
    return (at - t0) / 1e6


def run(bench: Bench, rounds: int, handoffs: int, takeovers: int) -> dict[str, Any]:
    stack = bench.stack
    a, b = bench.accounts[0], bench.accounts[1]
    urls = (ws_url(stack.url(0)), ws_url(stack.url(1)))
    env = stack.env
    ttl_ms = int(env.get("COLLAB_LEASE_TTL_MS", "15000"))
    delay_ms = int(env.get("COLLAB_LOCK_DELAY_MS", "2000"))
    bound_ms = ttl_ms + delay_ms + 1000
    rt_note = bench.new_note(a)
    hand_note = bench.new_note(a, [b])
    take_notes = [bench.new_note(a, [b]) for _ in range(takeovers)]

    async def all_runs() -> tuple[Any, ...]:
        acq, rel = await _round_trips(urls[0], a.token, rt_note, rounds, stack.proto)
        hand, anomalies = await _handoffs(
            urls, (a.token, b.token), hand_note, handoffs, bound_ms / 1000, stack.proto
        )
        # Take-overs run side by side (different notes): each waits out a TTL.
        take = await asyncio.gather(
            *(
                _takeover(urls, (a.token, b.token), n, bound_ms / 1000, stack.proto)
                for n in take_notes
            )
        )
        return acq, rel, hand, anomalies, list(take)

    load_before = stats.loadavg()
    meter = bench.meter(parent=True)
    meter.start()
    acq, rel, hand, anomalies, take = asyncio.run(all_runs())
    cpu = meter.stop()
    result = {
        "acquire_ms": stats.summarize(acq),
        "release_ms": stats.summarize(rel),
        "handoff_ms": stats.summarize(hand),
        "handoff_cross_replica": len(stack.urls) > 1,
        "handoff_granted_anomalies": anomalies,
        "takeover_ms": stats.summarize(take),
        "takeover_samples_ms": [round(t, 1) for t in take],
        "takeover_bound_ms": bound_ms,
        "lease_ttl_ms": ttl_ms,
        "lock_delay_ms": delay_ms,
        "cpu": cpu,
        "loadavg_before": load_before,
        "loadavg_after": stats.loadavg(),
    }
    print(f"token acquire  {stats.brief(result['acquire_ms'])}", flush=True)
    print(f"token release  {stats.brief(result['release_ms'])}", flush=True)
    print(
        f"token hand-off {stats.brief(result['handoff_ms'])} "
        f"(cross-replica={result['handoff_cross_replica']}; anomalies={anomalies})",
        flush=True,
    )
    print(
        f"token take-over {result['takeover_samples_ms']} ms (bound TTL+lock-delay+1s ="
        f" {bound_ms} ms); cores {cores_summary(cpu)}",
        flush=True,
    )
    return result
