"""The live sockets of this replica, indexed by session, note and user, and
the highest version of each subscribed note known here: one owner for all of
it, so every map is kept in step and shrinks with what is live (nothing stays
for a note nobody here watches, or a user with no socket here).

Also here: what each socket has been delivered, per note it subscribed to
(``deliveries``); the edit feed reads and advances it under the note's
delivery lock."""

from __future__ import annotations

from collections.abc import Iterator

from collab.peer import Peer


class SocketIndex:
    def __init__(self) -> None:
        self._by_session: dict[str, Peer] = {}
        self._by_user: dict[str, set[Peer]] = {}
        self._by_note: dict[str, set[Peer]] = {}
        self._known: dict[str, int] = {}  # note -> highest version known here
        self._delivered: dict[Peer, dict[str, int]] = {}  # socket -> note -> version

    # -- sockets ---------------------------------------------------------------
    def add(self, peer: Peer) -> list[str]:
        """``peer`` now serves its session here. A socket that served it
        before is dropped with its subscriptions; returns the notes nobody
        here watches any more because of that (their state is gone)."""
        emptied: list[str] = []
        old = self._by_session.get(peer.session)
        if old is not None and old is not peer:
            emptied = [n for n in self.subscriptions(old) if self.unsubscribe(old, n)]
            self._discard_user(old)
            self._delivered.pop(old, None)
        self._by_session[peer.session] = peer
        self._by_user.setdefault(peer.user.id, set()).add(peer)
        self._delivered.setdefault(peer, {})
        return emptied

    def remove(self, peer: Peer) -> bool:
        """Forget ``peer``; False if another socket serves its session now."""
        if self._by_session.get(peer.session) is not peer:
            return False
        del self._by_session[peer.session]
        self._discard_user(peer)
        self._delivered.pop(peer, None)
        return True

    def _discard_user(self, peer: Peer) -> None:
        mine = self._by_user.get(peer.user.id)
        if mine is not None:
            mine.discard(peer)
            if not mine:
                del self._by_user[peer.user.id]

    def subscriptions(self, peer: Peer) -> list[str]:
        """The notes ``peer`` subscribed to."""
        return list(self._delivered.get(peer, ()))

    def delivered(self, peer: Peer, note: str) -> int | None:
        """The version of ``note`` delivered to ``peer``; None if not subscribed."""
        return self._delivered.get(peer, {}).get(note)

    def deliver(self, peer: Peer, note: str, version: int, *, at_least: bool = True) -> None:
        """Record what ``peer`` now has of a note it subscribed to: at least
        ``version`` (a push, a catch-up), or exactly it (a snapshot)."""
        mine = self._delivered.get(peer)
        if mine is None or note not in mine:
            return
        mine[note] = max(mine[note], version) if at_least else version

    def get(self, session: str) -> Peer | None:
        return self._by_session.get(session)

    def serves(self, session: str) -> bool:
        return session in self._by_session

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._by_session.values()))

    def __len__(self) -> int:
        return len(self._by_session)

    def sizes(self) -> dict[str, int]:
        """Entries per map (what the simulation checks shrinks back to 0)."""
        return {"sessions": len(self._by_session), "users": len(self._by_user),
                "notes": len(self._by_note), "versions": len(self._known),
                "deliveries": len(self._delivered)}  # fmt: skip

    def of_user(self, user_id: str) -> list[Peer]:
        return list(self._by_user.get(user_id, ()))

    # -- subscriptions ---------------------------------------------------------------
    def subscribe(self, peer: Peer, note: str, version: int) -> None:
        """``peer`` watches ``note`` from ``version`` on (its snapshot's);
        nothing is kept for a socket that is not indexed (closed meanwhile)."""
        mine = self._delivered.get(peer)
        if mine is None:
            return
        mine[note] = version
        self._by_note.setdefault(note, set()).add(peer)

    def unsubscribe(self, peer: Peer, note: str) -> bool:
        """True when nobody here watches ``note`` any more (its state is gone)."""
        self._delivered.get(peer, {}).pop(note, None)
        peers = self._by_note.get(note)
        if peers is None:
            return False
        peers.discard(peer)
        if peers:
            return False
        self.forget_note(note)
        return True

    def forget_note(self, note: str) -> None:
        for peer in self._by_note.pop(note, ()):
            self._delivered.get(peer, {}).pop(note, None)
        self._known.pop(note, None)

    def viewers(self, note: str) -> list[Peer]:
        return list(self._by_note.get(note, ()))

    def watched(self, note: str) -> bool:
        return note in self._by_note

    def notes(self) -> list[str]:
        return list(self._by_note)

    def subscription_count(self) -> int:
        return sum(len(p) for p in self._by_note.values())

    # -- versions known ----------------------------------------------------------------
    def known(self, note: str, default: int = 0) -> int:
        return self._known.get(note, default)

    def raise_known(self, note: str, version: int) -> None:
        """Only for a note someone here watches: the map stays bounded."""
        if note in self._by_note:
            self._known[note] = max(self._known.get(note, version), version)

    def forget_known(self, note: str) -> None:
        self._known.pop(note, None)

    def known_notes(self) -> dict[str, int]:
        return dict(self._known)

    def sessions(self) -> list[str]:
        """The sessions with a socket here."""
        return list(self._by_session)

    def users(self) -> list[str]:
        """The users with a socket here."""
        return list(self._by_user)
