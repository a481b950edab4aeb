"""Small builders shared by the store tests."""

from __future__ import annotations

from collab.store import Store
from collab.types import Change, EditPayload, Note, Role, User, Visibility


async def make_user(store: Store, name: str, role: Role = "user") -> User:
    record = await store.create_user(name, "hash-" + name, role)
    return record.user()


async def make_note(
    store: Store, owner: User, content: str = "hello", visibility: Visibility = "private"
) -> Note:
    return await store.create_note(owner.id, "title", content, visibility)


def insert(at: int, text: str, delete: int = 0) -> EditPayload:
    """One change: replace ``delete`` code points at ``at`` with ``text``."""
    return EditPayload(changes=(Change(at, delete, text),))
