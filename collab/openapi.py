"""The OpenAPI 3.1 description of the HTTP API (protocol.md, HTTP API), as data,
and the route that serves it at ``GET /api/openapi.json``.

The document is built from the running settings so its limits (title and note
length, minimum password length) are the ones the server enforces; the
schema-driven fuzzer in ``tests/security`` holds the server to it, and
``tests/security/test_openapi_doc.py`` checks that every route in ``api.ROUTES``
is described and nothing else is.

Request bodies allow unknown properties (the server ignores them) and say
``null`` where the server treats ``null`` as "absent", so the document
describes what is accepted, not a stricter wish.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.api import routes_for
from collab.settings import Settings
from collab.types import GRANTS, ROLES, VISIBILITIES

ERROR_CODES = (
    "bad_request",
    "unauthorized",
    "token_expired",
    "forbidden",
    "not_found",
    "locked",
    "fenced",
    "stale",
    "too_large",
    "quota_exceeded",
    "rate_limited",
    "unavailable",
    "internal",
)

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Malformed request or body",
    401: "Missing, invalid or expired token, or wrong credentials",
    403: "Not allowed for this role or note, switched off, a disabled account, or over a "
    "storage quota (quota_exceeded)",
    404: "No such resource",
    409: "Conflict (name not available: taken or reserved)",
    413: "Body over COLLAB_MAX_BODY_BYTES",
    429: "Throttled: a login brake, a sign-up/login/guest/lookup/note-creation budget, or the "
    "hash queue",
    503: "A backing store is unavailable or the replica is draining",
}

# Text fields may not hold U+0000 (PostgreSQL text cannot store it; both
# backends refuse it). Titles also need one non-space character.
NO_NUL = "^[^\\u0000]*$"
TITLE_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "maxLength": 64}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj([key], **{key: {"type": "array", "items": item}})


def _schemas(s: Settings) -> dict[str, Any]:
    text = {"type": "string"}
    integer = {"type": "integer", "minimum": 0}
    user = _obj(["id", "name", "role"], id=text, name=text, role={"enum": list(ROLES)})
    note_fields = {
        "id": text,
        "owner_id": {"type": ["string", "null"]},  # null for guests: no account ids
        "title": text,
        "visibility": {"enum": list(VISIBILITIES)},
        "version": integer,
        "created_at": text,
        "updated_at": text,
        "access": {"enum": ["read", "write", "admin"]},
    }
    summary_keys = ["id", "owner_id", "title", "visibility", "version", "created_at", "updated_at"]
    brief = _obj(["id", "name"], id=text, name=text)
    return {
        "Error": _obj(
            ["error"],
            error=_obj(["code", "message"], code={"enum": list(ERROR_CODES)}, message=text),
        ),
        "User": user,
        "UserRecord": _obj(
            ["id", "name", "role", "created_at", "disabled"],
            **user["properties"],
            created_at=text,
            disabled={"type": "boolean"},
        ),
        "TokenReply": _obj(
            ["token", "expires_at", "user"], token=text, expires_at=text, user=_ref("User")
        ),
        "Config": _obj(
            ["allow_signup", "allow_guest", "heartbeat_ms", "lease_ttl_ms", "max_note_chars"],
            allow_signup={"type": "boolean"},
            allow_guest={"type": "boolean"},
            heartbeat_ms=integer,
            lease_ttl_ms=integer,
            max_note_chars=integer,
        ),
        "NoteSummary": _obj([*summary_keys, "access"], **note_fields),
        "Note": _obj([*summary_keys, "content"], **note_fields, content=text),
        "NoteList": _list_of("notes", _ref("NoteSummary")),
        "Grant": _obj(["user", "access"], user=brief, access={"enum": list(GRANTS)}),
        "GrantList": _list_of("grants", _ref("Grant")),
        "Revision": _obj(
            ["note", "version", "title", "created_at", "by"],
            note=text,
            version=integer,
            title=text,
            created_at=text,
            by={"type": ["string", "null"]},
            content=text,
        ),
        "RevisionList": _list_of("revisions", _ref("Revision")),
        "UserList": _list_of("users", _ref("UserRecord")),
        "FoundUser": brief,
        "Session": _obj(
            ["session", "user", "replica", "connected_at", "notes"],
            session=text,
            user=_ref("User"),
            replica=text,
            connected_at=text,
            notes={"type": "array", "items": text},
        ),
        "SessionList": _list_of("sessions", _ref("Session")),
        "Revoked": _obj(["note", "fence"], note=text, fence=integer),
        "Kicked": _obj(["session", "kicked"], session=text, kicked={"const": True}),
        "Health": _obj(["status"], status=text, checks={"type": "object"}),
        # Bodies. Limits come from settings.
        "Credentials": _obj(
            ["username", "password"],
            username={"type": "string", "maxLength": 40, "pattern": NO_NUL},
            password={"type": "string", "maxLength": 256, "pattern": NO_NUL},
        ),
        "PasswordChange": _obj(
            ["current_password", "new_password"],
            current_password={"type": "string", "maxLength": 256, "pattern": NO_NUL},
            new_password={
                "type": "string",
                "minLength": s.min_password_chars,
                "maxLength": 256,
                "pattern": NO_NUL,
            },
        ),
        "Registration": _obj(
            ["username", "password"],
            username={"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}$"},
            password={
                "type": "string",
                "minLength": s.min_password_chars,
                "maxLength": 256,
                "pattern": NO_NUL,
            },
        ),
        "NewNote": _obj(
            ["title"],
            title={"type": "string", "maxLength": s.max_title_chars, "pattern": TITLE_PATTERN},
            content={"type": ["string", "null"], "maxLength": s.max_note_chars, "pattern": NO_NUL},
            visibility={"enum": [*VISIBILITIES, None]},
        ),
        "NotePatch": _obj(
            [],
            title={
                "type": ["string", "null"],
                "maxLength": s.max_title_chars,
                "pattern": TITLE_PATTERN,
            },
            visibility={"enum": [*VISIBILITIES, None]},
        ),
        "AccessGrant": _obj(["access"], access={"enum": list(GRANTS)}),
        # At least one of the two (an empty change is a 400).
        "UserChange": {
            **_obj(
                [],
                role={"enum": [*(r for r in ROLES if r != "guest"), None]},
                disabled={"type": ["boolean", "null"]},
            ),
            "anyOf": [
                {"required": ["role"], "properties": {"role": {"type": "string"}}},
                {"required": ["disabled"], "properties": {"disabled": {"type": "boolean"}}},
            ],
        },
    }


def _op(
    summary: str,
    ok: int,
    result: str | None,
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    body_required: bool = True,
    public: bool = False,
    params: tuple[str, ...] = (),
    links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One operation: the success status with its schema, the error statuses
    it can answer with, its path/query parameters and its body."""
    responses: dict[str, Any] = {}
    success: dict[str, Any] = {"description": _STATUS_TEXT[ok]}
    if result is not None:
        success["content"] = {"application/json": {"schema": _ref(result)}}
    if links:
        success["links"] = links
    responses[str(ok)] = success
    for status in (*errors, *(() if public else (401,)), 503):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    out: dict[str, Any] = {"summary": summary, "responses": responses}
    if public:
        out["security"] = []
    if params:
        out["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if body is not None:
        out["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return out


def _note_links() -> dict[str, Any]:
    """After POST /api/notes the fuzzer can follow the new note's id."""
    by_id = {"note_id": "$response.body#/id"}
    return {
        name: {"operationId": op, "parameters": by_id}
        for name, op in (
            ("GetNote", "get_note"),
            ("PatchNote", "patch_note"),
            ("DeleteNote", "delete_note"),
            ("ListRevisions", "list_revisions"),
            ("ListAccess", "list_access"),
        )
    }


def _paths(settings: Settings) -> dict[str, Any]:
    note = ("note_id",)
    paths: dict[str, Any] = {
        "/api/config": {"get": _op("Public client settings", 200, "Config", (), public=True)},
        "/api/auth/login": {
            "post": _op(
                "Log in (403: the account is disabled)",
                200,
                "TokenReply",
                (400, 401, 403, 413, 429),
                body="Credentials",
                public=True,
            )
        },
        "/api/auth/register": {
            "post": _op(
                "Create an account (role user); a taken name is a 409 like a reserved one",
                201,
                "TokenReply",
                (400, 403, 409, 413, 429),
                body="Registration",
                public=True,
            )
        },
        "/api/auth/guest": {
            "post": _op("A read-only guest token", 200, "TokenReply", (403, 429), public=True)
        },
        "/api/auth/refresh": {
            "post": _op("A fresh token for the same sign-in", 200, "TokenReply", ())
        },
        "/api/auth/logout": {"post": _op("Sign this token out", 204, None, ())},
        "/api/auth/password": {
            "post": _op(
                "Change one's password; other sessions end",
                200,
                "TokenReply",
                (400, 403, 413, 429),
                body="PasswordChange",
            )
        },
        "/api/me": {"get": _op("The caller", 200, "User", ())},
        "/api/users/lookup": {
            "get": _op(
                "Find a user by exact name", 200, "FoundUser", (403, 404, 429), params=("name",)
            )
        },
        "/api/notes": {
            "get": _op("Notes the caller may read", 200, "NoteList", ()),
            "post": _op(
                "Create a note (403 quota_exceeded past the owner's storage quota)",
                201,
                "Note",
                (400, 403, 413, 429),
                body="NewNote",
                links=_note_links(),
            ),
        },
        "/api/notes/{note_id}": {
            "get": _op("Read a note", 200, "Note", (403, 404), params=note),
            "patch": _op(
                "Rename or change visibility",
                200,
                "Note",
                (400, 403, 404, 413),
                body="NotePatch",
                body_required=False,  # an empty PATCH changes nothing and succeeds
                params=note,
            ),
            "delete": _op("Delete a note", 204, None, (403, 404), params=note),
        },
        "/api/notes/{note_id}/access": {
            "get": _op("Who the note is shared with", 200, "GrantList", (403, 404), params=note),
        },
        "/api/notes/{note_id}/access/{user_id}": {
            "put": _op(
                "Share with a user",
                200,
                "Grant",
                (400, 403, 404, 413),
                body="AccessGrant",
                params=("note_id", "user_id"),
            ),
            "delete": _op("Stop sharing", 204, None, (403, 404), params=("note_id", "user_id")),
        },
        "/api/notes/{note_id}/revisions": {
            "get": _op(
                "Saved revisions, newest first", 200, "RevisionList", (403, 404), params=note
            ),
        },
        "/api/notes/{note_id}/revisions/{version}": {
            "get": _op(
                "The text at one version",
                200,
                "Revision",
                (400, 403, 404),
                params=("note_id", "version"),
            ),
        },
        "/api/admin/users": {"get": _op("All accounts (admin)", 200, "UserList", (403,))},
        "/api/admin/users/{user_id}": {
            "patch": _op(
                "Change a role, disable or enable an account (admin)",
                200,
                "UserRecord",
                (400, 403, 404, 413),
                body="UserChange",
                params=("user_id",),
            ),
            "delete": _op(
                "Delete an account and the notes it owns (admin)",
                204,
                None,
                (400, 403, 404),
                params=("user_id",),
            ),
        },
        "/api/admin/sessions": {"get": _op("Live sessions (admin)", 200, "SessionList", (403,))},
        "/api/admin/notes/{note_id}/revoke": {
            "post": _op(
                "Fence the note's write token (admin)", 200, "Revoked", (403, 404), params=note
            ),
        },
        "/api/admin/sessions/{session_id}/kick": {
            "post": _op(
                "Close a session and end its user's sign-in everywhere (admin)",
                200,
                "Kicked",
                (403, 404),
                params=("session_id",),
            ),
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/livez": {"get": _op("Process is alive", 200, "Health", (), public=True)},
        "/readyz": {"get": _op("Ready for traffic", 200, "Health", (), public=True)},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    if settings.metrics_port:
        del paths["/metrics"]  # served on COLLAB_METRICS_PORT only
    served = {route.path for route in routes_for(settings)}
    for path in [p for p in paths if p.startswith("/api/") and p != "/api/openapi.json"]:
        if path not in served:
            del paths[path]
    for path, methods in paths.items():
        for method, operation in methods.items():
            operation["operationId"] = _operation_id(path, method)
    return paths


_OPERATION_IDS = {
    ("/api/notes/{note_id}", "get"): "get_note",
    ("/api/notes/{note_id}", "patch"): "patch_note",
    ("/api/notes/{note_id}", "delete"): "delete_note",
    ("/api/notes/{note_id}/revisions", "get"): "list_revisions",
    ("/api/notes/{note_id}/access", "get"): "list_access",
}


def _operation_id(path: str, method: str) -> str:
    known = _OPERATION_IDS.get((path, method))
    if known:
        return known
    words = [w.strip("{}") for w in path.strip("/").replace(".", "_").split("/") if w != "api"]
    return "_".join([method, *words])


def _parameters() -> dict[str, Any]:
    def path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": schema}

    return {
        "note_id": path("note_id", _ID),
        "user_id": path("user_id", {"type": "string", "minLength": 1, "maxLength": 64}),
        "session_id": path("session_id", {"type": "string", "minLength": 1, "maxLength": 64}),
        "version": path("version", {"type": "integer", "minimum": 0, "maximum": 10**15 - 1}),
        "name": {
            "name": "name",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 40},
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a server running with ``settings``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collab HTTP API",
            "version": "1",
            "description": "Real-time collaborative notes. The WebSocket protocol at /ws is "
            "described in docs/protocol.md; this document covers the HTTP API.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(settings),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": _schemas(settings),
            "parameters": _parameters(),
        },
    }


async def serve_openapi(request: Request) -> Response:
    """``GET /api/openapi.json``; built once per app and cached (settings are frozen)."""
    state = request.app.state
    cached: bytes | None = getattr(state, "openapi_bytes", None)
    if cached is None:
        cached = orjson.dumps(openapi_document(state.runtime.settings))
        state.openapi_bytes = cached
    return Response(cached, media_type="application/json")


ROUTE = Route("/api/openapi.json", serve_openapi, methods=["GET"])
