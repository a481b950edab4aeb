"""The operations guide lists every setting, so none is undocumented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from collab.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [
        f"COLLAB_{f.name.upper()}"
        for f in dataclasses.fields(Settings)
        if f"`COLLAB_{f.name.upper()}`" not in text
    ]
    assert not missing, f"undocumented settings: {missing}"
