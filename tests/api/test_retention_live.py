"""Edit-log retention on a running server (embedded and distributed): the
background compactor drops old payloads; ``sync`` from before the kept log
answers with a snapshot, from within it with the edits; a retry of a
compacted edit is acknowledged, not applied again; revisions stay.
docs/protocol.md, "Storage quotas and edit-log retention"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize(
    "backend_env", ["embedded", "distributed"], indirect=True, scope="module"
)


@pytest.fixture(scope="module")
def server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        env=backend_env(
            COLLAB_EDIT_LOG_COMPACT_INTERVAL_S="0.3", COLLAB_EDIT_LOG_KEEP_PER_NOTE="2",
            COLLAB_EDIT_LOG_KEEP_S="0", COLLAB_REVISION_EVERY_VERSIONS="5",
        ),
        name="retention",
    ).start()  # fmt: skip
    yield proc
    proc.stop(5)


async def test_sync_and_retries_after_compaction(server: ServerProcess) -> None:
    user = await Api.register(server.url)
    note = (await user.ok("POST", "/api/notes", {"title": "log", "content": ""}, status=201))["id"]
    ops = [new_op() for _ in range(11)]
    ws = await WsClient.signed_in(server.ws_url, user.token)
    try:
        fence = (await ws.request("acquire", note=note))["fence"]
        for v in range(1, 11):
            change = {"at": v - 1, "del": 0, "ins": chr(96 + v)}
            ack = await ws.request(
                "edit", note=note, fence=fence, base=v - 1, op=ops[v], changes=[change]
            )
            assert ack["type"] == "ack" and ack["version"] == v, ack
        # Revision 10 is saved in the background; then the compactor may drop
        # every payload but the newest two.
        for _ in range(50):
            reply = await ws.request("sync", note=note, since=0)
            if reply["type"] == "snapshot":
                break
            await asyncio.sleep(0.2)
        assert reply["type"] == "snapshot" and reply["version"] == 10, reply
        assert reply["content"] == "abcdefghij"
        kept = await ws.request("sync", note=note, since=8)
        assert kept["type"] == "changes", kept
        assert [e["version"] for e in kept["edits"]] == [9, 10]
        # A late retry of edit 2 (its op id is kept longer than its payload).
        retry = await ws.request(
            "edit", note=note, fence=fence, base=1, op=ops[2],
            changes=[{"at": 1, "del": 0, "ins": "b"}],
        )  # fmt: skip
        assert retry["type"] == "ack" and retry["version"] == 2, retry
    finally:
        await ws.close()
    after = await user.ok("GET", f"/api/notes/{note}")
    assert (after["version"], after["content"]) == (10, "abcdefghij")
    revisions = await user.ok("GET", f"/api/notes/{note}/revisions")
    # Saved in the background every 5 versions (at the version current then).
    saved = sorted(r["version"] for r in revisions["revisions"])
    assert saved[0] == 0 and saved[-1] == 10 and len(saved) <= 3, saved
    for version in saved:
        text = (await user.ok("GET", f"/api/notes/{note}/revisions/{version}"))["content"]
        assert text == "abcdefghij"[:version]
    assert (await user.call("GET", f"/api/notes/{note}/revisions/3")).status_code == 404
