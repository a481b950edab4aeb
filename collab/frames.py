"""Every frame the server sends, built in one place (the client's frames are
parsed in ``messages.py``). Field names and shapes are docs/protocol.md's;
a builder per frame type keeps them identical wherever a frame is sent."""

from __future__ import annotations

from typing import Any

import orjson

from collab.messages import Rid
from collab.types import Access, LockState, LossReason, Note, User

Frame = dict[str, Any]


def encode(frame: Frame) -> str:
    """Serialise one server frame (text)."""
    return orjson.dumps(frame).decode()


def snapshot(
    note: Note, access: Access, lock: LockState | None, viewers: list[dict[str, Any]], rid: Rid
) -> Frame:
    """The reply to ``subscribe``; also sent with rid null to catch a socket
    up when the edit log cannot cover its gap."""
    return {
        "type": "snapshot", "rid": rid, "note": note.id, "title": note.title,
        "content": note.content, "version": note.version, "access": access,
        "lock": lock.wire() if lock else None, "viewers": viewers,
    }  # fmt: skip


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


def lock(note: str, state: LockState | None) -> Frame:
    return {"type": "lock", "note": note, "lock": state.wire() if state else None}


def presence(note: str, viewers: list[dict[str, Any]]) -> Frame:
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
def subscribed(rid: Rid, note: str, version: int) -> Frame:
    """The reply to a ``subscribe`` of a note the socket already watches."""
    return {"type": "subscribed", "rid": rid, "note": note, "version": version}


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
