"""The shared decision of ``commit_edit`` (checks 2-5), exhaustively: both
stores also guard the UPDATE in SQL, so the store-level tests alone could not
tell a broken check here from a working one."""

from __future__ import annotations

import pytest

from collab.errors import BadRequest, Fenced, Forbidden, Stale
from collab.store.checks import check_edit, stored_writer_access
from collab.types import Access


def decide(
    fence: int,
    base: int,
    logged: tuple[int, str] | None = None,
    access: Access | None = "write",
    holder: str = "s1",
) -> int | None:
    return check_edit(
        fence=fence, holder=holder, base=base, current_fence=5, current_holder="s1",
        current_version=9, logged=logged, payload_hash="h", access=access,
    )  # fmt: skip


def test_only_writers_pass_after_the_duplicate_check() -> None:
    for access in ("write", "admin"):
        assert decide(5, 9, access=access) is None
    for refused in ("read", None):
        with pytest.raises(Forbidden):
            decide(5, 9, access=refused)
        # A retry of an op that committed while it could still write is acked.
        assert decide(5, 9, logged=(3, "h"), access=refused) == 3


def test_access_comes_from_the_stored_rows() -> None:
    assert stored_writer_access("u", "user", "u", "private", None) == "admin"  # owner
    assert stored_writer_access("u", "user", "o", "private", "write") == "write"
    assert stored_writer_access("u", "user", "o", "public", "read") == "read"
    assert stored_writer_access("u", "admin", "o", "private", None) == "admin"
    # No stored account: a guest, who never writes, whatever the grant says.
    assert stored_writer_access("u", None, "u", "public", "write") == "read"
    assert stored_writer_access("u", None, "o", "private", "write") is None


def test_applies_only_on_equal_fence_and_current_base() -> None:
    assert decide(5, 9) is None
    for fence in (4, 6):  # lower is stale, higher was never made durable
        with pytest.raises(Fenced):
            decide(fence, 9)
    for base in (8, 10):
        with pytest.raises(Stale) as exc:
            decide(5, base)
        assert exc.value.extra == {"version": 9}


def test_order_duplicate_then_fence_then_version() -> None:
    assert decide(1, 0, logged=(3, "h")) == 3
    with pytest.raises(BadRequest):
        decide(1, 0, logged=(3, "other"))
    with pytest.raises(Fenced):
        decide(4, 0)


def test_the_fence_must_be_the_sessions_own() -> None:
    for holder in ("s2", ""):
        with pytest.raises(Fenced):
            decide(5, 9, holder=holder)
