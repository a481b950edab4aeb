"""An unexpected failure in a handler is answered like every other error:
the JSON error shape with no stack trace, the request id and every security
header (Starlette's own 500 is sent outside the app's middlewares)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from collab.app import create_app
from collab.settings import Settings


def test_a_500_carries_the_request_id_and_the_security_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(sqlite_path=str(tmp_path / "collab.db"), jwt_secret="k" * 48)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]

        async def broken() -> None:
            raise RuntimeError("secret detail that must not leak")

        guest = client.post("/api/auth/guest").json()["token"]
        monkeypatch.setattr(runtime.store, "list_notes_for", lambda *a: broken())
        answer = client.get("/api/notes", headers={"authorization": f"Bearer {guest}",
                                                   "x-request-id": "req-42"})  # fmt: skip
    assert answer.status_code == 500
    assert answer.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret detail" not in answer.text
    assert answer.headers["x-request-id"] == "req-42"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
