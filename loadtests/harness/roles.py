"""What each driver process does (see ``drivers``). Latencies are shipped
back as float32 milliseconds; counts as plain ints. A spec's ``proto``
(``collab``, the default, or ``peer``) picks the client (``peerclient``)."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from typing import Any

from loadtests.harness.drivers import Control
from loadtests.harness.peerclient import opener
from loadtests.harness.wsclient import Frame, ProtocolError
from loadtests.optime import op_time_ns, timed_op

OPEN_CONCURRENCY = 64  # sockets being opened at once per driver process


async def _open_many(
    url: str, tokens: list[str], count: int, make_handler: Any = None, proto: str = "collab"
) -> tuple[list[Any], Counter[str]]:
    """Open ``count`` authenticated sockets, cycling through ``tokens``."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    connect = opener(proto)
    conns: list[Any] = []
    failures: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with gate:
            try:
                handler = make_handler(i) if make_handler else None
                conns.append(await connect(url, tokens[i % len(tokens)], handler))
            except Exception as exc:
                failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

    await asyncio.gather(*(one(i) for i in range(count)))
    return conns, failures


class ViewerTrack:
    """Per socket: versions seen, gaps and order, fan-out latency samples."""

    __slots__ = ("base", "closed", "dup", "last", "lat", "reordered", "seen")

    def __init__(self) -> None:
        self.base = -1
        self.last = -1
        self.seen: set[int] = set()
        self.reordered = 0
        self.dup = 0
        self.closed = False
        self.lat: array[float] = array("f")


async def viewers(spec: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """Subscribe ``count`` sockets to ``note``; record every ``edited`` push
    until told the final version, then report latency, loss and order."""
    note = spec["note"]
    tracks = [ViewerTrack() for _ in range(spec["count"])]
    op_cache: dict[str, int | None] = {}
    last_rx = [0]  # arrival time of the latest edited push in this process

    def handler(i: int) -> Any:
        track = tracks[i]

        def on_push(frame: Frame, now_ns: int) -> None:
            if frame.get("type") != "edited" or frame.get("note") != note:
                return
            version = frame["version"]
            op = frame["op"]
            last_rx[0] = max(last_rx[0], now_ns)
            sent = op_cache.get(op)
            if sent is None and op not in op_cache:
                sent = op_cache[op] = op_time_ns(op)
            if sent is not None:
                track.lat.append((now_ns - sent) / 1e6)
            if version in track.seen:
                track.dup += 1
                return
            if version < track.last:
                track.reordered += 1
            track.seen.add(version)
            track.last = max(track.last, version)

        return on_push

    conns, failures = await _open_many(
        spec["url"], spec["tokens"], spec["count"], handler, spec.get("proto", "collab")
    )
    for i, conn in enumerate(conns):
        snap = await conn.request("subscribe", within_s=60, note=note)
        if snap.get("type") != "snapshot":
            raise ProtocolError(f"subscribe refused: {snap}")
        tracks[i].base = tracks[i].last = snap["version"]
    tracks = tracks[: len(conns)]
    ctl.send("ready", {"open": len(conns), "failed": dict(failures)})
    final = await ctl.expect("finish")
    deadline = time.monotonic() + spec.get("grace_s", 5.0)
    while time.monotonic() < deadline and any(t.last < final for t in tracks):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling: pushes arrive on many sockets at once
    lost = reordered = dup = 0
    for t, conn in zip(tracks, conns, strict=True):
        expected = final - t.base
        lost += expected - sum(1 for v in t.seen if t.base < v <= final)
        reordered += t.reordered
        dup += t.dup
        t.closed = conn.closed is not None
    closed = sum(1 for t in tracks if t.closed)
    lat = array("f")
    for t in tracks:
        lat.extend(t.lat)
    for conn in conns:
        conn.abort()
    return {
        "viewers": len(tracks),
        "lost": lost,
        "reordered": reordered,
        "duplicates": dup,
        "closed_by_server": closed,
        "last_rx_ns": last_rx[0],
        "latency_ms": lat.tobytes(),
    }


async def writer(spec: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """Hold the note's token and type ``rate`` one-character edits per second
    for ``duration_s``, pipelined (no wait for each ack), like a fast typist."""
    note = spec["note"]
    conn = await opener(spec.get("proto", "collab"))(spec["url"], spec["token"])
    snap = await conn.request("subscribe", note=note)
    granted = await conn.request("acquire", note=note, wait=False)
    if granted.get("type") != "granted":
        raise ProtocolError(f"acquire refused: {granted}")
    fence, v0, length = granted["fence"], snap["version"], len(snap["content"])
    ctl.send("ready", {"version": v0})
    rate, duration = await ctl.expect("go")
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    sent_ns: list[int] = []
    futures: list[asyncio.Future[Frame]] = []
    lag = array("f")
    start_ns = time.time_ns()
    t0 = loop.time()
    for i in range(total):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag.append(-delay * 1000)
        op = timed_op()
        sent_ns.append(op_time_ns(op) or 0)
        futures.append(
            await conn.start(
                "edit",
                note=note,
                fence=fence,
                base=v0 + i,
                op=op,
                changes=[{"at": length + i, "del": 0, "ins": "x"}],
            )
        )
    done, _ = await asyncio.wait(futures, timeout=30)
    acks = array("f")
    errors: Counter[str] = Counter()
    final = v0
    for fut, ns in zip(futures, sent_ns, strict=True):
        if fut not in done or fut.exception() is not None:
            errors["no_reply"] += 1
            continue
        reply = fut.result()
        if reply.get("type") == "ack":
            acks.append((reply["_rx"] - ns) / 1e6)
            final = max(final, reply["version"])
        else:
            errors[str(reply.get("code"))] += 1
    await conn.request("release", note=note, fence=fence)
    await conn.close()
    late = sorted(lag)
    return {
        "sent": total,
        "acked": len(acks),
        "errors": dict(errors),
        "final_version": final,
        "first_version": v0,
        "start_ns": start_ns,
        "ack_ms": acks.tobytes(),
        "late_sends": len(late),
        "max_send_lag_ms": round(late[-1], 2) if late else 0.0,
    }


async def editors(spec: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """One socket per (token, note) pair, each holding its note's token and
    committing edits with ``window`` in flight for ``duration_s``."""
    pairs: list[tuple[str, str]] = spec["pairs"]
    window = spec["window"]
    states = []
    connect = opener(spec.get("proto", "collab"))
    for token, note in pairs:
        conn = await connect(spec["url"], token)
        snap = await conn.request("subscribe", note=note)
        granted = await conn.request("acquire", note=note, wait=False)
        if granted.get("type") != "granted":
            raise ProtocolError(f"acquire refused: {granted}")
        states.append((conn, note, granted["fence"], snap["version"], len(snap["content"])))
    ctl.send("ready", {"editors": len(states)})
    duration = await ctl.expect("go")
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    acks = array("f")
    errors: Counter[str] = Counter()
    in_window = 0
    end_ns = time.time_ns() + int(duration * 1e9)

    async def run(conn: Any, note: str, fence: int, v0: int, length: int) -> None:
        nonlocal in_window
        gate = asyncio.Semaphore(window)
        pending: set[asyncio.Future[Frame]] = set()
        i = 0
        while loop.time() < end:
            await gate.acquire()
            op = timed_op()
            sent = op_time_ns(op) or 0
            fut = await conn.start(
                "edit",
                note=note,
                fence=fence,
                base=v0 + i,
                op=op,
                changes=[{"at": length + i, "del": 0, "ins": "y"}],
            )
            i += 1
            pending.add(fut)

            def done(f: asyncio.Future[Frame], sent: int = sent) -> None:
                nonlocal in_window
                gate.release()
                pending.discard(f)
                if f.cancelled() or f.exception() is not None:
                    errors["no_reply"] += 1
                    return
                reply = f.result()
                if reply.get("type") != "ack":
                    errors[str(reply.get("code"))] += 1
                    return
                acks.append((reply["_rx"] - sent) / 1e6)
                if reply["_rx"] <= end_ns:
                    in_window += 1

            fut.add_done_callback(done)
        if pending:
            await asyncio.wait(pending, timeout=30)

    await asyncio.gather(*(run(*s) for s in states))
    for conn, *_ in states:
        await conn.close()
    return {
        "acked": len(acks),
        "acked_in_window": in_window,
        "errors": dict(errors),
        "ack_ms": acks.tobytes(),
    }


async def idlers(spec: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """Hold idle authenticated sockets that heartbeat. Commands from the
    parent: ``("grow", n)`` opens sockets until ``n`` are open here, then
    replies ``("grown", info)``; ``("finish", None)`` drops them all."""
    conns: list[Any] = []
    failures: Counter[str] = Counter()
    ctl.send("ready", {})
    while True:
        kind, data = await ctl.recv()
        if kind == "finish":
            break
        want = int(data) - len(conns)
        started = time.monotonic()
        if want > 0:
            more, failed = await _open_many(
                spec["url"], spec["tokens"], want, proto=spec.get("proto", "collab")
            )
            conns.extend(more)
            failures.update(failed)
        alive = sum(1 for c in conns if c.closed is None)
        ctl.send(
            "grown",
            {
                "open": alive,
                "failed": dict(failures),
                "open_s": round(time.monotonic() - started, 2),
            },
        )
    alive = sum(1 for c in conns if c.closed is None)
    for conn in conns:
        conn.abort()
    return {"open_at_end": alive, "failed": dict(failures)}
