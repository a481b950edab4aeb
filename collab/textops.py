"""Applying edits to text. Positions count Unicode code points, which is what
Python ``str`` indexes, so slicing is exact (protocol.md, Transport)."""

from __future__ import annotations

from collab.errors import BadRequest, TooLarge
from collab.types import Change, EditPayload


def apply_changes(text: str, changes: tuple[Change, ...]) -> str:
    """Apply ``changes`` in order, each against the text the previous produced.

    Raises ``BadRequest`` when a change starts or ends outside the text."""
    for i, change in enumerate(changes):
        end = change.at + change.delete
        if change.at < 0 or change.delete < 0 or end > len(text):
            raise BadRequest(
                f"change {i} covers [{change.at}, {end}) but the text has {len(text)} characters"
            )
        text = text[: change.at] + change.insert + text[end:]
    return text


def apply_payload(text: str, payload: EditPayload, max_chars: int) -> str:
    """Apply a whole edit; refuse a result longer than ``max_chars``."""
    if payload.content is not None:
        result = payload.content
    else:
        result = apply_changes(text, payload.changes or ())
    if len(result) > max_chars:
        raise TooLarge(f"the note would exceed {max_chars} characters", limit=max_chars)
    return result
