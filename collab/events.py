"""Every event the replicas send each other over the bus, built in one place.
Pub/sub is at-most-once (rule 7): events only say what to look at again;
receivers re-read the shared state, and edit events carry their version (and
the database timeline they committed on) so a receiver can tell a gap."""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def edited(note: str, version: int, frame: dict[str, Any], ts: float, timeline: int) -> Event:
    return {"t": "edited", "note": note, "version": version, "frame": frame, "ts": ts,
            "tl": timeline}  # fmt: skip


def lock(note: str, reason: str, fence: int = 0) -> Event:
    return {"t": "lock", "note": note, "reason": reason, "fence": fence}


def presence(note: str) -> Event:
    return {"t": "presence", "note": note}


def moved(session: str, socket: str) -> Event:
    """The session resumed on another socket: its old socket closes."""
    return {"t": "moved", "session": session, "socket": socket}


def access(user: str, note: str | None) -> Event:
    """A role or grant changed: re-check the user's sockets (all notes if None)."""
    return {"t": "access", "user": user, "note": note}


def visibility(note: str) -> Event:
    """The note's visibility changed: re-check the sockets subscribed to it."""
    return {"t": "visibility", "note": note}


def kick(session: str) -> Event:
    return {"t": "kick", "session": session}


def deleted(note: str) -> Event:
    return {"t": "deleted", "note": note}


def caret(frame: dict[str, Any]) -> Event:
    """The holder's caret moved; ``frame`` is what viewers get. Lost ones do
    not matter: the next move carries the whole position."""
    return {"t": "caret", "note": frame["note"], "frame": frame}


def edit_request(note: str, holder_session: str, sender: dict[str, Any]) -> Event:
    """Someone asks the holding session for the note's token."""
    return {"t": "edit_request", "note": note, "session": holder_session, "from": sender}
