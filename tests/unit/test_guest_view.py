"""What guests are told about people (docs/protocol.md, "What guests see"):
aliases stable per note, different across notes and keys, no ids or roles;
and ``welcome.server`` reveals no replica name."""

from __future__ import annotations

import json

from collab import frames
from collab.types import LockState, Note, User

ALICE, BOB = User("u-alice", "alice", "admin"), User("u-bob", "bob", "user")
NOTE = Note("n1", "u-alice", "t", "text", "public", 3, 7, "2026-01-01", "2026-01-01")
LOCK = LockState(ALICE, "sess-alice", 7, "2026-01-01T00:00:00.000000Z", (BOB,))
VIEWERS = [ALICE.wire(), BOB.wire()]
SECRETS = ("u-alice", "u-bob", "sess-alice", "admin", "role")


def test_a_guest_snapshot_names_people_by_alias_and_name_only() -> None:
    guest = frames.GuestView(b"k" * 32)
    snap = frames.snapshot(NOTE, "read", LOCK, VIEWERS, 1, guest)
    text = json.dumps(snap)
    assert not [s for s in SECRETS if s in text], text
    assert [set(v) for v in snap["viewers"]] == [{"id", "name"}] * 2
    ids = {v["name"]: v["id"] for v in snap["viewers"]}
    assert snap["lock"]["holder"] == {"id": ids["alice"], "name": "alice"}
    assert snap["lock"]["queue"] == [{"id": ids["bob"], "name": "bob"}]
    assert snap["lock"]["fence"] == 7 and snap["lock"]["since"] == LOCK.since
    # The same aliases in pushes of the same note.
    assert frames.presence("n1", VIEWERS, guest)["viewers"] == snap["viewers"]
    assert frames.lock("n1", LOCK, guest)["lock"] == snap["lock"]
    assert frames.lock("n1", None, guest)["lock"] is None


def test_aliases_differ_between_notes_and_keys() -> None:
    one, other = frames.GuestView(b"a" * 32), frames.GuestView(b"b" * 32)
    assert one.alias("n1", "u-alice") == one.alias("n1", "u-alice")
    assert one.alias("n1", "u-alice") != one.alias("n2", "u-alice")
    assert one.alias("n1", "u-alice") != one.alias("n1", "u-bob")
    assert one.alias("n1", "u-alice") != other.alias("n1", "u-alice")


def test_signed_in_users_still_get_ids_and_roles() -> None:
    snap = frames.snapshot(NOTE, "read", LOCK, VIEWERS, 1)
    assert snap["viewers"] == VIEWERS and snap["lock"] == LOCK.wire()
    assert frames.presence("n1", VIEWERS)["viewers"] == VIEWERS


def test_the_server_token_is_stable_and_names_no_replica() -> None:
    token = frames.replica_token("secret-" + "x" * 40, "collab-7d9f-abcde")
    assert token == frames.replica_token("secret-" + "x" * 40, "collab-7d9f-abcde")
    assert "collab-7d9f" not in token and token.startswith("srv-")
    assert token != frames.replica_token("secret-" + "x" * 40, "collab-7d9f-fghij")
    assert token != frames.replica_token("other-" + "x" * 40, "collab-7d9f-abcde")
