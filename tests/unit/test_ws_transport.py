"""Server frames framed once for every viewer are byte for byte what the
WebSocket library itself would send."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from collab.ws_transport import framed_text


@pytest.mark.parametrize("chars", [0, 1, 125, 126, 127, 65535, 65536, 300_000])
@pytest.mark.parametrize("char", ["a", "é", "🌍"])
def test_framing_matches_the_library(chars: int, char: str) -> None:
    text = char * chars
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert framed_text(text) == expected


def test_the_same_string_is_framed_once() -> None:
    text = "x" * 1000
    first = framed_text(text)
    assert framed_text(text) is first
    other = framed_text("y" * 1000)
    assert other != first and framed_text(text) == first
