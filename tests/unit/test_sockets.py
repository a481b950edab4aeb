"""The socket index keeps its maps in step and shrinks with what is live."""

from __future__ import annotations

from collab.sockets import SocketIndex
from collab.types import Access, User


class _Peer:
    def __init__(self, session: str, user: str) -> None:
        self.socket_id = session + "-socket"
        self.session = session
        self.user = User(user, user, "user")
        self.access: dict[str, Access] = {}

    def push(self, frame: str) -> None: ...

    def close_soon(self, code: int, reason: str) -> None: ...


def test_sessions_users_and_notes_stay_in_step() -> None:
    index = SocketIndex()
    a, b = _Peer("s1", "u1"), _Peer("s2", "u1")
    index.add(a)
    index.add(b)
    assert index.of_user("u1") == [a, b] or index.of_user("u1") == [b, a]
    index.subscribe(a, "n", 3)
    index.subscribe(b, "n", 4)
    index.deliver(a, "n", 4)
    index.deliver(a, "n", 2)  # never backwards, except a snapshot
    assert index.delivered(a, "n") == 4
    index.deliver(b, "n", 1, at_least=False)
    assert index.delivered(b, "n") == 1
    index.subscribe(_Peer("s3", "u2"), "n", 0)  # not indexed: nothing kept
    assert len(index.viewers("n")) == 2
    index.raise_known("n", 4)
    index.raise_known("unwatched", 9)  # nobody here watches it: not kept
    assert index.known("n") == 4 and index.known("unwatched", -1) == -1
    assert not index.unsubscribe(a, "n")  # b still watches
    assert index.delivered(a, "n") is None and index.subscriptions(a) == []
    assert index.unsubscribe(b, "n")  # the last one: the note's state goes
    assert index.known("n", -1) == -1
    assert index.remove(a) and index.remove(b)
    assert index.sizes() == {
        "sessions": 0, "users": 0, "notes": 0, "versions": 0, "deliveries": 0,
    }  # fmt: skip


def test_a_resumed_session_replaces_its_old_socket() -> None:
    index = SocketIndex()
    old, new = _Peer("s", "u"), _Peer("s", "u")
    index.add(old)
    index.subscribe(old, "n", 1)
    assert index.add(new) == ["n"]  # the old socket's subscriptions go with it
    assert index.viewers("n") == [] and not index.watched("n")
    assert index.get("s") is new and index.of_user("u") == [new]
    assert not index.remove(old)  # superseded: removing it changes nothing
    assert index.remove(new)
    assert index.sizes()["users"] == 0
