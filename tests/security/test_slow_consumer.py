"""A client that never reads cannot pin a replica's memory (docs/security.md):
what waits for one socket is bounded in bytes, a second subscribe queues
nothing, and the socket of a slow consumer is dropped without waiting for a
close handshake it would never read."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import orjson

from tests.security.test_abuse_load import vm_rss_kb
from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

NOTE_CHARS = 300_000


async def big_note(server: ServerProcess, api: Api) -> str:
    """A public note written in ten edits (one client frame is at most
    64 KiB), so a ``sync`` from 0 answers with the whole text."""
    note = (
        await api.ok("POST", "/api/notes", {"title": "big", "visibility": "public"}, status=201)
    )["id"]
    writer = await WsClient.signed_in(server.ws_url, api.token)
    fence = (await writer.request("acquire", note=note))["fence"]
    piece = NOTE_CHARS // 10
    for base in range(10):
        change = {"at": base * piece, "ins": "é" * piece}
        ack = await writer.request(
            "edit", note=note, fence=fence, base=base, op=new_op(), changes=[change]
        )
        assert ack["type"] == "ack", ack
    await writer.close()
    return str(note)


async def test_a_second_subscribe_sends_no_second_snapshot(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    server = spawn_server(backend_env())
    api = await Api.register(server.url)
    note = await big_note(server, api)
    ws = await WsClient.signed_in(server.ws_url, api.token)
    first = await ws.request("subscribe", note=note)
    assert first["type"] == "snapshot" and first["version"] == 10
    again = await ws.request("subscribe", note=note)
    assert again == {"type": "subscribed", "rid": again["rid"], "note": note, "version": 10}
    await asyncio.sleep(0.2)
    assert [f["type"] for f in ws.frames].count("snapshot") == 1
    await ws.close()


class NeverReader:
    """A WebSocket client on a bare TCP socket that sends and never reads
    (a browser tab frozen by the debugger, or an attacker): a tiny receive
    buffer, so the server's writes back up at once."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)  # only the handshake's bytes, one at a time
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, frame: dict[str, Any]) -> None:
        payload, mask = orjson.dumps(frame), os.urandom(4)
        assert len(payload) < 65536
        header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask
        self.sock.sendall(header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def cut_off(self, within_s: float) -> bool:
        """Whether the server ended the connection: read what it sent until
        the end (a reset or a close); False if it is still open."""
        self.sock.settimeout(within_s)
        try:
            while self.sock.recv(1 << 20):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True


async def test_a_never_reading_client_leaves_memory_flat_and_is_cut_off(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    server = spawn_server(backend_env())
    assert server.proc is not None
    api = await Api.register(server.url)
    note = await big_note(server, api)
    before_kb = vm_rss_kb(server.proc.pid)
    lazy = NeverReader(server.port)
    lazy.send({"type": "hello", "token": api.token})
    # Each sync from 0 (of a note this socket did not subscribe to, so the
    # reply starts at 0) asks for about 600 KB, 300,000 two-byte characters;
    # 300 of them would be 180 MB waiting on the server for this one socket.
    for _ in range(300):
        lazy.send({"type": "sync", "note": note, "since": 0})
    await asyncio.sleep(2.0)
    peak_kb = vm_rss_kb(server.proc.pid)
    grew_mb = (peak_kb - before_kb) / 1024
    print(f"server RSS {before_kb / 1024:.0f} MB -> {peak_kb / 1024:.0f} MB under the attack")
    assert grew_mb < 48, f"one socket grew the server by {grew_mb:.0f} MB"
    assert await asyncio.to_thread(lazy.cut_off, 10.0), "kept open: " + server.log()[-3000:]
    metrics = (await api.call("GET", "/metrics")).text
    dropped = sum(float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("collab_ws_slow_consumers_total"))  # fmt: skip
    assert dropped == 1
    # The replica serves the others as before.
    other = await WsClient.signed_in(server.ws_url, api.token)
    assert (await other.request("heartbeat"))["type"] == "heartbeat_ack"
    await other.close()
