"""A holder client as a child process, so a test can SIGSTOP it.

``python -m tests.faults.pausable_client WS_URL TOKEN NOTE EVENTS NAME``
connects, subscribes, acquires NOTE (waiting), writes one edit, prints
``holding <fence> <version>`` and heartbeats every 300 ms. When its loop
notices it was paused (a tick late by more than ``PAUSE_GAP_S``) it first
sends one edit under the fence it still believes in -- a client whose pause
hid the loss of its token -- prints ``stale <reply type> <code>`` and exits.
Every frame it sends or receives is appended to EVENTS as a history event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import websockets

PAUSE_GAP_S = 1.0
HEARTBEAT_S = 0.3


class Child:
    def __init__(self, ws: Any, events: Any, name: str) -> None:
        self.ws, self.events, self.name = ws, events, name
        self.rid = 0

    def log(self, kind: str, frame: dict[str, Any]) -> None:
        event = {"t": time.monotonic(), "client": self.name, "kind": kind, "frame": frame}
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    async def send(self, frame: dict[str, Any]) -> str:
        self.rid += 1
        frame = {**frame, "rid": f"c{self.rid}"}
        self.log("send", frame)
        await self.ws.send(json.dumps(frame))
        return str(frame["rid"])

    async def reply(self, rid: str) -> dict[str, Any]:
        """Frames until the reply to ``rid`` that is not ``queued``."""
        while True:
            frame: dict[str, Any] = json.loads(await self.ws.recv())
            self.log("recv", frame)
            if frame.get("rid") == rid and frame.get("type") != "queued":
                return frame


async def main(url: str, token: str, note: str, events: Any, name: str) -> None:
    async with websockets.connect(url) as ws:
        c = Child(ws, events, name)
        await c.reply(await c.send({"type": "hello", "token": token}))
        snap = await c.reply(await c.send({"type": "subscribe", "note": note}))
        granted = await c.reply(await c.send({"type": "acquire", "note": note}))
        fence, version = int(granted["fence"]), int(snap["version"])
        ack = await c.reply(
            await c.send(
                {
                    "type": "edit",
                    "note": note,
                    "fence": fence,
                    "base": version,
                    "op": str(uuid.uuid4()),
                    "changes": [{"at": 0, "del": 0, "ins": f"[{name}-1]"}],
                }
            )
        )
        version = int(ack["version"])
        print("holding", fence, version, flush=True)
        last = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            now = time.monotonic()
            if now - last > PAUSE_GAP_S:
                break
            last = now
            await c.reply(await c.send({"type": "heartbeat"}))
        reply = await c.reply(
            await c.send(
                {
                    "type": "edit",
                    "note": note,
                    "fence": fence,
                    "base": version,
                    "op": str(uuid.uuid4()),
                    "changes": [{"at": 0, "del": 0, "ins": f"[{name}-2]"}],
                }
            )
        )
        print("stale", reply.get("type"), reply.get("code", "-"), flush=True)


if __name__ == "__main__":
    url, token, note, events_path, name = sys.argv[1:6]
    with open(events_path, "a") as events:
        asyncio.run(main(url, token, note, events, name))
