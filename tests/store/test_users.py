"""Store contract: accounts."""

from __future__ import annotations

import pytest

from collab.errors import BadRequest, Conflict, NotFound
from collab.store import Store
from tests.store.helpers import make_user


async def test_create_and_get_user(store: Store) -> None:
    record = await store.create_user("Alice", "argon2-hash", "admin")
    assert len(record.id) == 32
    assert (record.name, record.role, record.password_hash) == ("Alice", "admin", "argon2-hash")
    assert record.created_at.endswith("Z") and "T" in record.created_at
    assert await store.get_user(record.id) == record
    assert await store.get_user("0" * 32) is None


async def test_name_lookup_and_uniqueness_ignore_case(store: Store) -> None:
    alice = await store.create_user("Alice", "h", "user")
    assert await store.get_user_by_name("aLICE") == alice
    assert await store.get_user_by_name("bob") is None
    with pytest.raises(Conflict) as exc:
        await store.create_user("ALICE", "h2", "user")
    assert "INSERT" not in exc.value.message and "users" not in exc.value.message
    # Case folding is the same on both backends, beyond ASCII too.
    await store.create_user("Ærøskøbing", "h", "user")
    with pytest.raises(Conflict):
        await store.create_user("ærøskøbing", "h", "user")


async def test_guests_are_never_stored(store: Store) -> None:
    with pytest.raises(BadRequest):
        await store.create_user("guest1", "h", "guest")
    user = await make_user(store, "carol")
    with pytest.raises(BadRequest):
        await store.set_role(user.id, "guest")


async def test_list_users_set_role_count_admins(store: Store) -> None:
    assert await store.list_users() == []
    assert await store.count_admins() == 0
    bob = await make_user(store, "bob")
    await make_user(store, "Alice", "admin")
    assert [u.name for u in await store.list_users()] == ["Alice", "bob"]
    assert await store.count_admins() == 1
    promoted = await store.set_role(bob.id, "admin")
    assert promoted.role == "admin" and promoted.id == bob.id
    assert await store.count_admins() == 2
    assert (await store.get_user(bob.id)).role == "admin"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await store.set_role("f" * 32, "user")
