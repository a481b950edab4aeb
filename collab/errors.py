"""One error hierarchy. Each error maps to exactly one wire outcome: a protocol
error ``code`` and an HTTP status. Messages are written for users and never
carry stack traces, SQL or secrets."""

from __future__ import annotations

from typing import Any


class CollabError(Exception):
    code = "internal"
    status = 500
    default_message = "internal error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def wire(self, rid: str | int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if rid is not None:
            out["rid"] = rid
        out.update(self.extra)
        return out

    def http_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(CollabError):
    code = "bad_request"
    status = 400
    default_message = "bad request"


class Unauthorized(CollabError):
    code = "unauthorized"
    status = 401
    default_message = "authentication required"


class TokenExpired(CollabError):
    code = "token_expired"
    status = 401
    default_message = "token expired"


class Forbidden(CollabError):
    code = "forbidden"
    status = 403
    default_message = "forbidden"


class NotFound(CollabError):
    code = "not_found"
    status = 404
    default_message = "not found"


class Locked(CollabError):
    code = "locked"
    status = 409
    default_message = "the note is being edited by someone else"


class Fenced(CollabError):
    code = "fenced"
    status = 409
    default_message = "your write token is no longer current; stop writing"


class Stale(CollabError):
    code = "stale"
    status = 409
    default_message = "base version is not the current version"


class Conflict(CollabError):
    """HTTP-only conflict (e.g. a username already taken); wire code bad_request."""

    code = "bad_request"
    status = 409
    default_message = "conflict"


class TooLarge(CollabError):
    code = "too_large"
    status = 413
    default_message = "too large"


class QuotaExceeded(CollabError):
    """The note owner's storage quota (``COLLAB_MAX_NOTES_PER_USER`` or
    ``COLLAB_MAX_BYTES_PER_USER``) would be exceeded; carries ``quota``
    (``notes`` or ``bytes``) and ``limit``. Nothing was written."""

    code = "quota_exceeded"
    status = 403
    default_message = "storage quota exceeded"


class EditExpired(CollabError):
    """An edit whose base is older than the kept edit log, with an op id not
    (or no longer) in it: it may be a retry of an edit applied long ago, so it
    is neither applied nor acknowledged. Carries the current ``version``."""

    code = "edit_expired"
    status = 409
    default_message = (
        "this edit is older than the kept edit log and may already have been applied; "
        "sync, then redo it if it is missing"
    )


class RateLimited(CollabError):
    code = "rate_limited"
    status = 429
    default_message = "too many requests; slow down"


class Unavailable(CollabError):
    code = "unavailable"
    status = 503
    default_message = "a backing store is unavailable; retry later"


class Internal(CollabError):
    code = "internal"
    status = 500
    default_message = "internal error"
