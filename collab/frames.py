"""Every frame the server sends, built in one place (the client's frames are
parsed in ``messages.py``). Field names and shapes are docs/protocol.md's;
a builder per frame type keeps them identical wherever a frame is sent."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from collab.messages import Rid
from collab.types import Access, LockState, LossReason, Note, User

Frame = dict[str, Any]


class GuestView:
    """What a guest is told about the people on a note (docs/protocol.md,
    "What guests see"): their names, each under an alias in place of the
    account id, and no roles. An alias is a keyed hash of (note, id): stable
    for one note under one key, so a client can still tell viewers apart,
    but it names no account and links to nothing on any other note. The key
    is the replica's own (``Fanout``), so aliases also differ per replica."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def alias(self, note_id: str, ident: str) -> str:
        mac = hmac.new(self._key, f"{note_id}\x00{ident}".encode(), hashlib.sha256)
        return "anon-" + mac.hexdigest()[:16]

    def person(self, note_id: str, who: Mapping[str, Any]) -> dict[str, Any]:
        """A ``USER`` or ``BRIEF`` as a guest sees it: ``{"id": alias, "name"}``."""
        return {"id": self.alias(note_id, str(who["id"])), "name": who["name"]}

    def edited(self, frame: Frame) -> Frame:
        """An ``edited`` frame (or a ``changes`` entry) with its author aliased."""
        return {**frame, "by": self.person(str(frame["note"]), frame["by"])}

    def viewers(self, note_id: str, viewers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.person(note_id, v) for v in viewers]

    def lock(self, note_id: str, state: LockState | None) -> dict[str, Any] | None:
        if state is None:
            return None
        return {
            "holder": self.person(note_id, state.holder.brief()),
            "session": self.alias(note_id, "session\x00" + state.session),
            "fence": state.fence, "since": state.since,
            "queue": [self.person(note_id, u.brief()) for u in state.queue],
        }  # fmt: skip


def replica_token(secret: str, replica_id: str) -> str:
    """The ``server`` field of ``welcome``: stable for a replica id under one
    JWT key (so clients and tests can tell replicas apart and a restarted pod
    keeps its token) but it does not reveal the id, which is often a pod
    name. The "collab started" log line gives each replica's token. Keyed by
    a key derived from the JWT key, never the JWT key itself."""
    key = hmac.new(secret.encode(), b"collab replica token key", hashlib.sha256).digest()
    return "srv-" + hmac.new(key, replica_id.encode(), hashlib.sha256).hexdigest()[:12]


def encode(frame: Frame) -> str:
    """Serialise one server frame (text)."""
    return orjson.dumps(frame).decode()


def snapshot(
    note: Note, access: Access, lock: LockState | None, viewers: list[dict[str, Any]], rid: Rid,
    guest: GuestView | None = None,
) -> Frame:  # fmt: skip
    """The reply to ``subscribe``; also sent with rid null to catch a socket
    up when the edit log cannot cover its gap. ``guest`` when it goes to a
    guest: viewers and lock then name people as ``GuestView`` shows them."""
    if guest is not None:
        shown, people = guest.lock(note.id, lock), guest.viewers(note.id, viewers)
    else:
        shown, people = (lock.wire() if lock else None), viewers
    return {
        "type": "snapshot", "rid": rid, "note": note.id, "title": note.title,
        "content": note.content, "version": note.version, "access": access,
        "lock": shown, "viewers": people,
    }  # fmt: skip


def subscribed(rid: Rid, note: str, version: int) -> Frame:
    """The reply to a ``subscribe`` of a note the socket already watches."""
    return {"type": "subscribed", "rid": rid, "note": note, "version": version}


def changes(rid: Rid, note: str, since: int, to: int, edits: list[Frame]) -> Frame:
    return {"type": "changes", "rid": rid, "note": note, "from": since, "to": to, "edits": edits}


def ack(rid: Rid, note: str, op: str, version: int) -> Frame:
    return {"type": "ack", "rid": rid, "note": note, "op": op, "version": version}


def granted(rid: Rid, note: str, fence: int, ttl_ms: int) -> Frame:
    return {"type": "granted", "rid": rid, "note": note, "fence": fence, "ttl_ms": ttl_ms}


def queued(rid: Rid, note: str, position: int) -> Frame:
    return {"type": "queued", "rid": rid, "note": note, "position": position}


def released(rid: Rid, note: str) -> Frame:
    return {"type": "released", "rid": rid, "note": note}


def revoked(rid: Rid, note: str, fence: int) -> Frame:
    return {"type": "revoked", "rid": rid, "note": note, "fence": fence}


def lease_lost(note: str, fence: int, reason: LossReason) -> Frame:
    return {"type": "lease_lost", "note": note, "fence": fence, "reason": reason}


def lock(note: str, state: LockState | None, guest: GuestView | None = None) -> Frame:
    """``guest`` when it goes to guests (see ``snapshot``)."""
    if guest is not None:
        return {"type": "lock", "note": note, "lock": guest.lock(note, state)}
    return {"type": "lock", "note": note, "lock": state.wire() if state else None}


def presence(note: str, viewers: list[dict[str, Any]], guest: GuestView | None = None) -> Frame:
    """``guest`` when it goes to guests (see ``snapshot``)."""
    if guest is not None:
        return {"type": "presence", "note": note, "viewers": guest.viewers(note, viewers)}
    return {"type": "presence", "note": note, "viewers": viewers}


def access(note: str, level: Access) -> Frame:
    return {"type": "access", "note": note, "access": level}


def deleted(note: str) -> Frame:
    return {"type": "deleted", "note": note}


def welcome(
    rid: Rid, protocol: int, session: str, user: User, server: str, heartbeat_ms: int,
    lease_ttl_ms: int, resumed: bool, leases: list[dict[str, Any]],
) -> Frame:  # fmt: skip
    return {
        "type": "welcome", "rid": rid, "protocol": protocol, "session": session,
        "user": user.wire(), "server": server, "heartbeat_ms": heartbeat_ms,
        "lease_ttl_ms": lease_ttl_ms, "resumed": resumed, "leases": leases,
    }  # fmt: skip


def heartbeat_ack(rid: Rid, leases: list[dict[str, Any]]) -> Frame:
    return {"type": "heartbeat_ack", "rid": rid, "leases": leases}


def refreshed(rid: Rid, expires_at: str) -> Frame:
    return {"type": "refreshed", "rid": rid, "expires_at": expires_at}


def unsubscribed(rid: Rid, note: str) -> Frame:
    return {"type": "unsubscribed", "rid": rid, "note": note}


def caret(
    note: str, holder: dict[str, Any], session: str, fence: int, version: int, anchor: int,
    head: int,
) -> Frame:  # fmt: skip
    return {"type": "caret", "note": note, "holder": holder, "session": session, "fence": fence,
            "version": version, "anchor": anchor, "head": head}  # fmt: skip


def idle_warning(note: str, fence: int, handoff_in_ms: int | None) -> Frame:
    return {"type": "idle_warning", "note": note, "fence": fence, "handoff_in_ms": handoff_in_ms}


def kept(rid: Rid, note: str, handoff_in_ms: int | None) -> Frame:
    return {"type": "kept", "rid": rid, "note": note, "handoff_in_ms": handoff_in_ms}


def requested(rid: Rid, note: str, holder: dict[str, Any] | None) -> Frame:
    return {"type": "requested", "rid": rid, "note": note, "holder": holder}


def edit_request(note: str, sender: dict[str, Any]) -> Frame:
    return {"type": "edit_request", "note": note, "from": sender}
