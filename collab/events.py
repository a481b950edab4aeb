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


def signed_out(user: str) -> Event:
    """A token of the user was signed out or its password changed: sockets
    of the user check the token they signed in with again."""
    return {"t": "signed_out", "user": user}


def deleted(note: str) -> Event:
    return {"t": "deleted", "note": note}


def caret(frame: dict[str, Any]) -> Event:
    """The holder's caret moved; ``frame`` is what viewers get. Lost ones do
    not matter: the next move carries the whole position."""
    return {"t": "caret", "note": frame["note"], "frame": frame}


def edit_request(note: str, holder_session: str, sender: dict[str, Any]) -> Event:
    """Someone asks the holding session for the note's token."""
    return {"t": "edit_request", "note": note, "session": holder_session, "from": sender}


# -- routing ---------------------------------------------------------------------------------
# Each event goes to one topic, and a replica hears only the topics it follows
# (``Hub.topics_wanted``): the notes it serves a subscriber, a holder or a
# waiter of, and the sessions and users it has sockets of. Adding replicas
# then adds capacity instead of copies of every event (docs/scaling.md).
_SESSION_EVENTS = frozenset({"moved", "kick", "edit_request"})


def note_topic(note: str) -> str:
    return "note:" + note


def session_topic(session: str) -> str:
    return "session:" + session


def user_topic(user: str) -> str:
    return "user:" + user


# Followed by every replica at all times: an event naming no note, session or
# user (none of ours does) reaches everyone.
EVERYONE = "all"


def topic(event: Event) -> str:
    """The one topic ``event`` is published on."""
    kind = event.get("t")
    if kind in _SESSION_EVENTS and "session" in event:
        return session_topic(str(event["session"]))
    if kind in ("access", "signed_out") and "user" in event:
        return user_topic(str(event["user"]))
    if "note" in event:
        return note_topic(str(event["note"]))
    return EVERYONE
