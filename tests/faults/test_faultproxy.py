"""The fault proxy itself, against a plain TCP echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.faultproxy import FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fp = FaultProxy(port).start()
    yield fp
    fp.stop()
    server.close()


async def _roundtrip(fp: FaultProxy, payload: bytes, limit_s: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", fp.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), limit_s)
    finally:
        writer.close()


async def test_passes_bytes_through(proxy: FaultProxy) -> None:
    assert await _roundtrip(proxy, b"hello") == b"hello"


async def test_delay_holds_each_chunk(proxy: FaultProxy) -> None:
    proxy.delay(0.3, direction="down")
    started = time.monotonic()
    assert await _roundtrip(proxy, b"slow") == b"slow"
    assert time.monotonic() - started >= 0.3


async def test_blackhole_holds_until_heal_then_delivers_in_order(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"a")
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"a"
    proxy.blackhole()
    writer.write(b"bc")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(2), 0.4)
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(2), 2) == b"bc"
    writer.close()


async def test_drop_loses_bytes_and_cut_refuses(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.drop(direction="up")
    writer.write(b"lost")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.4)
    assert proxy.cut(refuse=True) == 1
    assert await asyncio.wait_for(reader.read(10), 2) == b""
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, TimeoutError)):
        await _roundtrip(proxy, b"x", limit_s=1)
    proxy.heal()
    assert await _roundtrip(proxy, b"back") == b"back"


async def test_rules_can_target_connections_by_their_first_bytes(proxy: FaultProxy) -> None:
    proxy.blackhole(match=b"SUB")
    assert await _roundtrip(proxy, b"PUB1") == b"PUB1"
    with pytest.raises(TimeoutError):
        await _roundtrip(proxy, b"SUB1", limit_s=0.4)
