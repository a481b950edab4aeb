"""The edit applier against a reference model, on arbitrary Unicode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.errors import BadRequest, TooLarge
from collab.textops import apply_changes, apply_payload
from collab.types import Change, EditPayload


def reference(text: str, changes: list[tuple[int, int, str]]) -> str | None:
    """Model: a list of code points edited in place; None when out of range."""
    chars = list(text)
    for at, delete, insert in changes:
        if at < 0 or delete < 0 or at + delete > len(chars):
            return None
        chars[at : at + delete] = list(insert)
    return "".join(chars)


def test_code_points_not_utf16() -> None:
    assert apply_changes("a🌍b", (Change(2, 1, "c"),)) == "a🌍c"


def test_out_of_range() -> None:
    with pytest.raises(BadRequest):
        apply_changes("abc", (Change(2, 2, ""),))


def test_too_large() -> None:
    with pytest.raises(TooLarge):
        apply_payload("ab", EditPayload(changes=(Change(2, 0, "cd"),)), max_chars=3)
    assert apply_payload("x", EditPayload(content="yz"), max_chars=2) == "yz"


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
change = st.tuples(st.integers(-2, 40), st.integers(-1, 10), texts)


@settings(max_examples=500, deadline=None)
@given(texts, st.lists(change, max_size=6))
def test_matches_reference(text: str, changes: list[tuple[int, int, str]]) -> None:
    expected = reference(text, changes)
    objs = tuple(Change(a, d, i) for a, d, i in changes)
    if expected is None:
        with pytest.raises(BadRequest):
            apply_changes(text, objs)
    else:
        assert apply_changes(text, objs) == expected
