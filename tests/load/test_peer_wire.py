"""The harness's pure pieces for the side-by-side benchmark: the Yjs and
Hocuspocus bytes (``loadtests/harness/ywire.py``), the integrity verdict and
medians of ``versus.py``, and the py-spy summary of ``profile.py``.

The expected bytes below were produced by Yjs 13.6.33 itself (the version
pinned in ``loadtests/peer/package-lock.json``): three 36-character inserts by
client 123456789 applied to a fresh document, then the document's full state
(Yjs merged the three inserts into one item) and its diff against a document
holding only the first insert."""

from __future__ import annotations

import pytest

from loadtests.harness import profile, versus, ywire

CLIENT = 123456789
YJS_UPDATES = [
    "0101959aef3a00040107636f6e74656e7424" + "30" * 36 + "00",
    "0101959aef3a2484959aef3a2324" + "30" * 35 + "3100",
    "0101959aef3a4884959aef3a4724" + "30" * 35 + "3200",
]
YJS_FULL_STATE = (
    "0101959aef3a00040107636f6e74656e746c" + "30" * 36 + "30" * 35 + "31" + "30" * 35 + "32" + "00"
)
YJS_DIFF_AFTER_FIRST = "0101959aef3a2484959aef3a2348" + "30" * 35 + "31" + "30" * 35 + "3200"


def op(i: int) -> str:
    return f"{i:036d}"


def test_inserts_are_byte_identical_to_yjs() -> None:
    for i, expected in enumerate(YJS_UPDATES):
        assert ywire.insert_update(CLIENT, i * ywire.OP_LEN, op(i)).hex() == expected


def test_merged_updates_split_back_into_edits() -> None:
    full = bytes.fromhex(YJS_FULL_STATE)
    assert ywire.edits_in_update(full) == [(1, op(0)), (2, op(1)), (3, op(2))]
    assert ywire.text_length(full) == 3 * ywire.OP_LEN
    diff = bytes.fromhex(YJS_DIFF_AFTER_FIRST)
    assert ywire.edits_in_update(diff) == [(2, op(1)), (3, op(2))]


def test_a_partial_edit_or_other_content_is_refused() -> None:
    half = ywire.insert_update(CLIENT, 18, "x" * 36)
    with pytest.raises(ywire.WireError, match="not whole edits"):
        ywire.edits_in_update(half)
    not_text = bytearray(ywire.insert_update(CLIENT, 0, op(0)))
    not_text[7] = (not_text[7] & ~0x1F) | 8  # the info byte: ContentAny, not ContentString
    with pytest.raises(ywire.WireError, match="not a string insert"):
        ywire.text_runs(bytes(not_text))
    with pytest.raises(ywire.WireError, match="truncated"):
        ywire.text_runs(bytes.fromhex(YJS_UPDATES[0])[:-10])


def test_messages_round_trip() -> None:
    doc = "bench-é"
    edit = ywire.parse(ywire.edit(doc, CLIENT, 0, op(7)))
    assert (edit.doc, edit.kind) == (doc, "update")
    assert ywire.edits_in_update(edit.update) == [(1, op(7))]
    said = ywire.parse(ywire.stateless(doc, '{"type":"granted"}'))
    assert (said.kind, said.text) == ("stateless", '{"type":"granted"}')
    status_ok = ywire.var_string(doc) + ywire.var_uint(ywire.MSG_SYNC_STATUS) + b"\x01"
    assert ywire.parse(status_ok).kind == "status" and ywire.parse(status_ok).ok
    denied = (
        ywire.var_string(doc)
        + ywire.var_uint(ywire.MSG_AUTH)
        + ywire.var_uint(ywire.AUTH_DENIED)
        + ywire.var_string("nope")
    )
    assert ywire.parse(denied).kind == "auth_denied"
    step1 = ywire.parse(ywire.sync_step1(doc))
    assert step1.kind == "step1" and step1.update == b"\x00"
    assert ywire.var_uint(300) == bytes([0xAC, 0x02])
    assert ywire.Reader(ywire.var_uint(2**40)).uint() == 2**40


def _pass(side: str, lost: int = 0, acked: int = 10, p99: float = 5.0) -> dict[str, object]:
    return {
        "side": side,
        "figures": {"same_p99": p99, "acquire_p50": None},
        "checks": {"same_lost": lost, "same_edits_sent": 10, "same_edits_acked": acked},
    }


def test_medians_and_problems() -> None:
    passes = [_pass("collab", p99=4.0), _pass("peer", p99=2.0), _pass("collab", p99=8.0)]
    passes.append(_pass("peer", lost=3, acked=9, p99=3.0))
    med = versus.median_figures(passes)
    assert med["collab"]["same_p99"] == 6.0 and med["peer"]["same_p99"] == 2.5
    assert med["collab"]["acquire_p50"] is None
    checks = versus.summed_checks(passes)
    assert versus.problems(checks) == ["peer: same_lost=3", "peer: same edits acked 19 of 20"]
    text, rows = versus.table(med, versus.Options(), 2)
    assert rows == [
        {
            "key": "same_p99",
            "measure": "keystroke to 100 viewers, same instance, p99",
            "unit": "ms",
            "collab": 6.0,
            "peer": 2.5,
            "ratio": 2.4,
        }
    ]
    assert "| keystroke to 100 viewers, same instance, p99 | ms | 6.00 | 2.50 | 2.40 |" in text


def test_profile_summary_counts_own_and_inclusive_samples() -> None:
    collapsed = "\n".join(
        [
            "run (asyncio/base_events.py:600);send (collab/session.py:10);write (x/t.py:3) 6",
            "run (asyncio/base_events.py:601);send (collab/session.py:12) 3",
            "run (asyncio/base_events.py:600);parse (collab/frames.py:5) 1",
            "garbage line",
        ]
    )
    top = profile.top_frames(collapsed, limit=3)
    assert top["samples"] == 10
    assert top["self"] == [("write (x/t.py)", 60.0), ("send (collab/session.py)", 30.0),
                           ("parse (collab/frames.py)", 10.0)]  # fmt: skip
    assert top["total"][0] == ("run (asyncio/base_events.py)", 100.0)
    assert ("send (collab/session.py)", 90.0) in top["total"]
    assert profile.top_frames("")["samples"] == 0
    looped = profile.top_frames(
        "main (collab/cli.py:3);Runner.run (asyncio/runners.py:118) 4\n"
        "main (collab/cli.py:3);Runner.run (asyncio/runners.py:118);send (a/b.py:1) 1\n"
    )
    assert looped["self"][0] == ("Runner.run (asyncio/runners.py)", 80.0)
    assert looped["total"] == [("send (a/b.py)", 20.0)]


def test_missing_node_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtests.harness import peerstack

    monkeypatch.setattr(peerstack.shutil, "which", lambda tool: None)
    assert peerstack.node_tools() == "node and npm not on PATH"
    monkeypatch.setattr(peerstack.shutil, "which", lambda tool: None if tool == "npm" else "/x")
    assert peerstack.node_tools() == "npm not on PATH"
