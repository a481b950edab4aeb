"""The shared decision of ``commit_edit`` (checks 2-4), exhaustively: both
stores also guard the UPDATE in SQL, so the store-level tests alone could not
tell a broken check here from a working one."""

from __future__ import annotations

import pytest

from collab.errors import BadRequest, Fenced, Stale
from collab.store.checks import check_edit


def decide(fence: int, base: int, logged: tuple[int, str] | None = None) -> int | None:
    return check_edit(
        fence=fence, base=base, current_fence=5, current_version=9, logged=logged,
        payload_hash="h",
    )  # fmt: skip


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
