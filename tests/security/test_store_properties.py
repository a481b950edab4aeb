"""Store-level sequence property (docs/design.md, rules 1-2): random runs of
``commit_edit`` and ``advance_fence`` on a real store (SQLite in a temp dir,
PostgreSQL in a fresh database) against a reference model. Valid and invalid
ranges, stale bases, wrong fences, retried and reused op ids and too-large
results each get exactly the model's outcome; a refused edit leaves the text,
version and fence unchanged; the edit log replays to the stored text."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab.errors import BadRequest, CollabError, Fenced, NotFound, Stale, TooLarge
from collab.store import PostgresStore, SqliteStore, Store
from collab.store.base import FenceAdvance
from collab.types import Change, EditPayload, User
from tests.support.services import create_database, drop_database

# The session every test fence is granted to (commits must come from it).
HOLDER = "s-holder"

MAX_CHARS = 24
# U+0000 is refused at the protocol edge (messages.py, api.py): PostgreSQL
# text cannot hold it, so the store never sees it.
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
# Mostly in range for short notes, sometimes past the end or negative.
CHANGE = st.builds(Change, at=st.integers(-1, 12), delete=st.integers(0, 4), insert=TEXT)
PAYLOAD = st.one_of(
    st.lists(CHANGE, min_size=1, max_size=4).map(lambda cs: EditPayload(changes=tuple(cs))),
    st.text(alphabet="ab🌍é", max_size=MAX_CHARS + 2).map(lambda t: EditPayload(content=t)),
)
Step = tuple[str, str, str, str, int, EditPayload]
STEP = st.tuples(
    st.sampled_from(["commit"] * 6 + ["advance", "missing"]),
    st.sampled_from(["current"] * 4 + ["stale", "future"]),  # which fence to send
    st.sampled_from(["current"] * 4 + ["behind", "ahead"]),  # which base to send
    st.sampled_from(["new"] * 3 + ["retry", "reuse"]),  # which op id to send
    st.integers(0, 1000),  # picks an earlier op id
    PAYLOAD,
)


@dataclass
class Model:
    """The reference: a list of code points, a version, a fence and the log of
    committed op ids (op -> (version, payload))."""

    text: str
    version: int = 0
    fence: int = 1
    log: dict[str, tuple[int, EditPayload]] = field(default_factory=dict)

    def apply(self, payload: EditPayload) -> str | type[CollabError]:
        if payload.content is not None:
            chars = list(payload.content)
        else:
            chars = list(self.text)
            for c in payload.changes or ():
                if c.at < 0 or c.delete < 0 or c.at + c.delete > len(chars):
                    return BadRequest
                chars[c.at : c.at + c.delete] = list(c.insert)
        return TooLarge if len(chars) > MAX_CHARS else "".join(chars)

    def commit(
        self, fence: int, base: int, op: str, payload: EditPayload
    ) -> tuple[int, bool] | type[CollabError]:
        """Outcome in the documented order of checks (store/base.py)."""
        if op in self.log:
            version, original = self.log[op]
            return (version, True) if original == payload else BadRequest
        if fence != self.fence:
            return Fenced
        if base != self.version:
            return Stale
        result = self.apply(payload)
        if not isinstance(result, str):
            return result
        self.text, self.version = result, self.version + 1
        self.log[op] = (self.version, payload)
        return self.version, False


async def run_sequence(store: Store, initial: str, steps: list[Step]) -> None:
    owner = (await store.create_user("p" + uuid.uuid4().hex[:12], "not-a-hash", "user")).user()
    note = await store.create_note(owner.id, "prop", initial, "private")
    assert (await store.advance_fence(note.id, 1, HOLDER, owner)).fence == 1
    model = Model(initial)
    sent: list[tuple[str, EditPayload]] = []
    for kind, fence_pick, base_pick, op_pick, index, payload in steps:
        if kind == "advance":
            target = model.fence + (index % 3) - 1  # lower, equal or higher: only raises
            advance = await store.advance_fence(note.id, target, HOLDER, owner)
            expected = FenceAdvance(raised=target > model.fence, fence=max(model.fence, target))
            assert advance == expected
            model.fence = max(model.fence, target)
            continue
        fence = {"current": model.fence, "stale": model.fence - 1, "future": model.fence + 1}
        base = {"current": model.version, "behind": max(0, model.version - 1 - index % 3),
                "ahead": model.version + 1 + index % 2}  # fmt: skip
        op = str(uuid.uuid4())
        if sent and op_pick == "retry":
            op, payload = sent[index % len(sent)]
        elif sent and op_pick == "reuse":
            op = sent[index % len(sent)][0]
        if kind == "missing":
            with pytest.raises(NotFound):
                await store.commit_edit(
                    uuid.uuid4().hex, 1, 0, op, payload, owner, MAX_CHARS, holder=HOLDER
                )
            continue
        sent.append((op, payload))
        await _commit_once(store, note.id, owner, model, fence[fence_pick], base[base_pick],
                           op, payload)  # fmt: skip
    await _log_replays_to_text(store, note.id, initial, model)


async def _commit_once(
    store: Store, note_id: str, owner: User, model: Model, fence: int, base: int, op: str,
    payload: EditPayload,
) -> None:  # fmt: skip
    before = (model.text, model.version, model.fence)
    expected = model.commit(fence, base, op, payload)
    try:
        got = await store.commit_edit(
            note_id, fence, base, op, payload, owner, MAX_CHARS, holder=HOLDER
        )
    except CollabError as exc:
        assert isinstance(expected, type), f"store refused {type(exc).__name__}, model {expected}"
        assert type(exc) is expected, f"store {type(exc).__name__}, model {expected.__name__}"
        if isinstance(exc, Stale):
            assert exc.extra["version"] == model.version
        assert (model.text, model.version, model.fence) == before
    else:
        assert expected == (got.version, got.duplicate), f"store {got}, model {expected}"
        if not got.duplicate:
            assert got.content == model.text
    stored = await store.get_note(note_id)
    assert stored is not None
    assert (stored.content, stored.version, stored.fence) == (
        model.text, model.version, model.fence,
    ), "the stored note drifted from the model"  # fmt: skip


async def _log_replays_to_text(store: Store, note_id: str, initial: str, model: Model) -> None:
    """The edit log holds every committed version once, in order, and
    replaying it from the initial text gives the stored text."""
    edits = await store.edits_since(note_id, 0, 10_000)
    assert edits is not None
    assert [e.version for e in edits] == list(range(1, model.version + 1))
    replay = Model(initial)
    for record in edits:
        result = replay.apply(record.payload)
        assert isinstance(result, str)
        replay.text = result
    assert replay.text == model.text


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "data" / "collab.db")
        return
    url = asyncio.run(create_database())
    try:
        yield "postgres", url
    finally:
        asyncio.run(drop_database(url))


EXAMPLES = {"sqlite": 100, "postgres": 12}


def test_commit_sequences_match_the_model(backend: tuple[str, str]) -> None:
    kind, where = backend
    loop = asyncio.new_event_loop()

    async def open_store() -> Store:
        opened: Store = (
            await SqliteStore(where).open()
            if kind == "sqlite"
            else await PostgresStore(where, pool_min=1, pool_max=2).open()
        )
        await opened.migrate()
        return opened

    store = loop.run_until_complete(open_store())

    @settings(max_examples=EXAMPLES[kind], deadline=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(initial=st.text(alphabet="ab🌍é\n", max_size=8), steps=st.lists(STEP, max_size=30))
    def check(initial: str, steps: list[Step]) -> None:
        loop.run_until_complete(run_sequence(store, initial, steps))

    try:
        check()
    finally:
        loop.run_until_complete(store.close())
        loop.close()
