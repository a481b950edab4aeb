"""The HTTP API of protocol.md. Every route validates its body at the edge and
asks ``collab.access`` for permission; errors leave as
``{"error":{"code","message"}}`` through the one handler in ``app.py``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab import events
from collab.access import can_create_notes, can_manage, is_admin, note_access
from collab.auth import Claims
from collab.clock import iso_from_epoch_s
from collab.errors import (
    BadRequest,
    CollabError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from collab.messages import NOTE_ID
from collab.types import GRANTS, ROLES, VISIBILITIES, Access, Note, User, Visibility

if TYPE_CHECKING:
    from collab.runtime import Runtime
    from collab.settings import Settings


log = logging.getLogger("collab.auth")
Endpoint = Callable[[Request], Awaitable[Response]]
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
MAX_USERNAME_CHARS = 40
MAX_PASSWORD_CHARS = 256


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def rt_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def body(request: Request) -> dict[str, Any]:
    """The JSON object body, bounded by ``COLLAB_MAX_BODY_BYTES``."""
    limit = rt_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body over {limit} bytes", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body over {limit} bytes", limit=limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def field_str(data: dict[str, Any], key: str, *, max_len: int, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise BadRequest(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"field {key!r} must be a string")
    if "\x00" in value:  # PostgreSQL text cannot hold U+0000: refuse it on every backend
        raise BadRequest(f"field {key!r} must not contain U+0000")
    if len(value) > max_len:
        raise BadRequest(f"field {key!r} is longer than {max_len} characters")
    return value


def field_choice(data: dict[str, Any], key: str, choices: tuple[str, ...], required: bool) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    if value not in choices:
        raise BadRequest(f"field {key!r} must be one of {', '.join(choices)}")
    return value


def path_id(request: Request, key: str, what: str) -> str:
    """A path parameter naming a stored id (uuid hex): anything else cannot
    exist, so it is ``NotFound`` before it reaches the database (U+0000 would
    make PostgreSQL fail with a 500)."""
    value: str = request.path_params[key]
    if len(value) > 64 or not NOTE_ID.fullmatch(value):
        raise NotFound(f"no such {what}")
    return value


def auth_event(request: Request, event: str, **fields: Any) -> None:
    """One warning per refused credential or braked attempt, with the client
    address (after trusted-proxy resolution), for alerting and forensics."""
    log.warning(
        "auth event",
        extra={"event": event, "client": rt_of(request).client_address(request),
               "path": request.url.path, **fields},
    )  # fmt: skip


async def caller_claims(request: Request) -> Claims:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    try:
        return await rt_of(request).authenticate(token.strip())
    except CollabError as exc:
        auth_event(request, "token_refused", reason=exc.message)
        raise


async def caller(request: Request) -> User:
    return (await caller_claims(request)).user


async def load_note(request: Request, user: User) -> tuple[Note, Access]:
    rt = rt_of(request)
    note_id = request.path_params["note_id"]
    valid = len(note_id) <= 64 and NOTE_ID.fullmatch(note_id)
    note = await rt.store.get_note(note_id) if valid else None
    if note is None:
        raise NotFound("no such note")
    access = await rt.hub.access_of(user, note)
    if access is None:
        raise Forbidden("you cannot read this note")
    return note, access


async def managed_note(request: Request, doing: str) -> Note:
    """The note of the path, if the caller is its owner or an admin (whose
    access is then "admin")."""
    note, access = await load_note(request, await caller(request))
    if not can_manage(access):
        raise Forbidden(f"only the owner or an admin can {doing}")
    return note


def _summary(note: Note, access: str) -> dict[str, Any]:
    out = note.wire()
    out.pop("content", None)
    out["access"] = access
    return out


# -- auth ------------------------------------------------------------------------
# Names a stranger might try to claim to pass for staff. They are refused with
# the same answer as a taken name, so a refusal does not prove an account exists.
RESERVED_NAMES = frozenset({
    "admin", "administrator", "root", "system", "collab", "support", "security", "guest",
})  # fmt: skip
_UNAVAILABLE_NAME = "this username is not available; choose another"
CREDENTIAL_ROUTE = "/api/auth/password"


def _token_reply(
    request: Request,
    user: User,
    status: int = 200,
    *,
    auth_time: float | None = None,
    password_version: str = "",
) -> Response:
    token, exp = rt_of(request).codec.issue(
        user, auth_time=auth_time, password_version=password_version
    )
    return json({"token": token, "expires_at": iso_from_epoch_s(exp), "user": user.wire()}, status)


def _credentials(data: dict[str, Any]) -> tuple[str, str]:
    name = field_str(data, "username", max_len=MAX_USERNAME_CHARS) or ""
    password = field_str(data, "password", max_len=MAX_PASSWORD_CHARS) or ""
    return name, password


def _check_brakes(request: Request, name: str, address: str) -> list[tuple[Any, list[str]]]:
    """The three login brakes with their keys, refusing (429) when any is on.
    The per-(account, address) brake trips first, so a stranger guessing one
    account does not lock its owner out elsewhere."""
    rt = rt_of(request)
    account = name.lower()
    brakes = [
        (rt.pair_throttle, [f"{account}\x00{address}"]),
        (rt.ip_throttle, [address]),
        (rt.account_throttle, [account]),
    ]
    now = time.monotonic()
    try:
        for throttle, keys in brakes:
            throttle.check(keys, now)
    except RateLimited:
        auth_event(request, "login_braked", username=name)
        raise
    return brakes


async def login(request: Request) -> Response:
    rt = rt_of(request)
    address = rt.client_address(request)
    rt.spend("login", address)  # before any hashing
    name, password = _credentials(await body(request))
    brakes = _check_brakes(request, name, address)
    record = await rt.store.get_user_by_name(name)
    # An unknown user still costs one verification (no timing oracle).
    ok = await rt.hashing.verify(record.password_hash if record else None, password)
    if not ok or record is None:
        now = time.monotonic()
        for throttle, keys in brakes:
            throttle.failed(keys, now)
        auth_event(request, "login_failed", username=name)
        raise Unauthorized("wrong username or password")
    # Only the pair brake is cleared: a success must not reset a distributed
    # guesser's count against the account.
    rt.pair_throttle.succeeded(brakes[0][1])
    if record.disabled:  # said only after the right password: no oracle for guessers
        auth_event(request, "login_disabled", username=name)
        raise Forbidden("this account is disabled")
    return _token_reply(
        request, record.user(), password_version=rt.codec.password_version(record.password_hash)
    )


async def register(request: Request) -> Response:
    rt = rt_of(request)
    if not rt.settings.allow_signup:
        raise Forbidden("sign-up is switched off")
    address = rt.client_address(request)
    rt.spend("register", address)  # before any hashing
    name, password = _credentials(await body(request))
    if not name or set(name) - _NAME_CHARS:
        raise BadRequest("username may use letters, digits, '_', '.', '-'")
    if len(password) < rt.settings.min_password_chars:
        raise BadRequest(f"password must be at least {rt.settings.min_password_chars} characters")
    # Hash first, even for a taken or reserved name: every refusal then costs
    # the same time as a success, so the answer's timing tells nothing more.
    password_hash = await rt.hashing.hash(password)
    if name.lower() in RESERVED_NAMES:
        raise Conflict(_UNAVAILABLE_NAME)
    try:
        record = await rt.store.create_user(name, password_hash, "user")
    except Conflict:
        auth_event(request, "register_name_taken", username=name)
        raise Conflict(_UNAVAILABLE_NAME) from None
    return _token_reply(
        request, record.user(), 201, password_version=rt.codec.password_version(password_hash)
    )


async def guest(request: Request) -> Response:
    rt = rt_of(request)
    if not rt.settings.allow_guest:
        raise Forbidden("guest access is switched off")
    rt.spend("guest", rt.client_address(request))
    gid = "guest-" + uuid.uuid4().hex[:12]
    return _token_reply(request, User(gid, "Guest " + gid[-4:], "guest"))


async def refresh(request: Request) -> Response:
    """A new token for the same sign-in: ``auth_time`` is carried over, so a
    chain of refreshes ends ``COLLAB_SESSION_MAX_AGE_S`` after the password
    was given (``authenticate`` refuses older sessions)."""
    rt = rt_of(request)
    claims = await caller_claims(request)
    started = claims.auth_time or (claims.expires_at - rt.settings.jwt_ttl_s)
    return _token_reply(
        request, claims.user, auth_time=started, password_version=claims.password_version
    )


async def logout(request: Request) -> Response:
    """Sign this token out: refused from now on until it would have expired."""
    rt = rt_of(request)
    claims = await caller_claims(request)
    await rt.signouts.sign_out(claims)
    # Sockets signed in with this token close on every replica (4401).
    await rt.hub.publish(events.signed_out(claims.user.id))
    auth_event(request, "logout", user=claims.user.id)
    return Response(status_code=204)


def routes_for(settings: Settings) -> list[Route]:
    """The routes this server serves (every store can serve them all now)."""
    return list(ROUTES)


async def change_password(request: Request) -> Response:
    """Change one's own password; every other token of the account stops
    working on every replica (their ``pwv`` no longer matches the stored hash)."""
    rt = rt_of(request)
    user = await caller(request)
    if user.role == "guest":
        raise Forbidden("guests have no password")
    address = rt.client_address(request)
    rt.spend("login", address)  # a verification, budgeted like a login
    data = await body(request)
    current = field_str(data, "current_password", max_len=MAX_PASSWORD_CHARS) or ""
    new = field_str(data, "new_password", max_len=MAX_PASSWORD_CHARS) or ""
    if len(new) < rt.settings.min_password_chars:
        raise BadRequest(f"password must be at least {rt.settings.min_password_chars} characters")
    brakes = _check_brakes(request, user.name, address)
    record = await rt.store.get_user(user.id)
    if record is None or not await rt.hashing.verify(record.password_hash, current):
        now = time.monotonic()
        for throttle, keys in brakes:
            throttle.failed(keys, now)
        auth_event(request, "password_change_refused", user=user.id)
        raise Forbidden("the current password is wrong")
    password_hash = await rt.hashing.hash(new)
    await rt.store.set_password(user.id, password_hash)
    # Sockets signed in with the older tokens close on every replica (4401).
    await rt.hub.publish(events.signed_out(user.id))
    auth_event(request, "password_changed", user=user.id)
    return _token_reply(request, user, password_version=rt.codec.password_version(password_hash))


async def config(request: Request) -> Response:
    s = rt_of(request).settings
    return json({"allow_signup": s.allow_signup, "allow_guest": s.allow_guest,
                 "heartbeat_ms": s.heartbeat_ms, "lease_ttl_ms": s.lease_ttl_ms,
                 "max_note_chars": s.max_note_chars})  # fmt: skip


async def me(request: Request) -> Response:
    return json((await caller(request)).wire())


async def lookup_user(request: Request) -> Response:
    """One account by its exact name (no prefix, pattern or case folding), at
    most ``COLLAB_LOOKUP_PER_USER_PER_MIN`` per caller: enough to share a
    note, too few to walk the user list."""
    rt = rt_of(request)
    user = await caller(request)
    if user.role == "guest":
        raise Forbidden("guests cannot look up users")
    if not rt.lookup_throttle.take(user.id, time.monotonic()):
        rt.metrics.rate_limited.labels("lookup").inc()
        raise RateLimited("too many look-ups; try again later", retry_after_s=1.0)
    name = request.query_params.get("name", "")
    valid = 0 < len(name) <= MAX_USERNAME_CHARS and "\x00" not in name  # U+0000: PostgreSQL
    record = await rt.store.get_user_by_name(name) if valid else None
    if record is None or record.name != name:
        raise NotFound("no such user")
    return json({"id": record.id, "name": record.name})


# -- notes -------------------------------------------------------------------------
async def list_notes(request: Request) -> Response:
    user = await caller(request)
    rt = rt_of(request)
    out = []
    for note, grant in await rt.store.list_notes_for(user):
        access = note_access(user, note.owner_id, note.visibility, grant)
        if access is not None:
            out.append(_for(user, _summary(note, access), "owner_id"))
    return json({"notes": out})


async def create_note(request: Request) -> Response:
    user = await caller(request)
    rt = rt_of(request)
    if not can_create_notes(user):
        raise Forbidden("guests cannot create notes")
    if user.role != "admin" and not rt.note_create_throttle.take(user.id, time.monotonic()):
        rt.metrics.rate_limited.labels("note_create").inc()
        raise RateLimited("too many new notes; try again later", retry_after_s=1.0)
    data = await body(request)
    title = field_str(data, "title", max_len=rt.settings.max_title_chars) or ""
    if not title.strip():
        raise BadRequest("title must not be empty")
    content = field_str(data, "content", max_len=rt.settings.max_note_chars, required=False)
    visibility: Visibility = (
        field_choice(data, "visibility", VISIBILITIES, required=False) or "private"
    )
    note = await rt.store.create_note(user.id, title, content or "", visibility)
    return json(note.wire("admin"), 201)


def _for(user: User, body: dict[str, Any], *people: str) -> dict[str, Any]:
    """``body`` as ``user`` may see it: a guest (anyone can be one) is not
    told account ids (docs/protocol.md, What guests see), so the fields
    ``people`` naming accounts are null for guests."""
    if user.role != "guest":
        return body
    return {**body, **dict.fromkeys(people)}


async def get_note(request: Request) -> Response:
    user = await caller(request)
    note, access = await load_note(request, user)
    return json(_for(user, note.wire(access), "owner_id"))


async def patch_note(request: Request) -> Response:
    rt = rt_of(request)
    note = await managed_note(request, "change this note")
    data = await body(request)
    title = field_str(data, "title", max_len=rt.settings.max_title_chars, required=False)
    if title is not None and not title.strip():
        raise BadRequest("title must not be empty")
    visibility = field_choice(data, "visibility", VISIBILITIES, required=False)
    updated = await rt.store.update_note(note.id, title, visibility)
    if visibility is not None and visibility != note.visibility:
        # Readers who relied on the note being public lose access now; only
        # the sockets subscribed to it are looked at, on every replica.
        await rt.hub.revocations.note_visibility_changed(note.id)
    return json(updated.wire("admin"))


async def delete_note(request: Request) -> Response:
    rt = rt_of(request)
    note = await managed_note(request, "delete this note")
    await rt.store.delete_note(note.id)
    await rt.hub.revocations.note_deleted(note.id)
    return Response(status_code=204)


async def list_access(request: Request) -> Response:
    note = await managed_note(request, "see who has access")
    grants = await rt_of(request).store.list_access(note.id)
    return json(
        {"grants": [{"user": {"id": u.id, "name": u.name}, "access": g} for u, g in grants]}
    )


async def put_access(request: Request) -> Response:
    rt = rt_of(request)
    note = await managed_note(request, "share this note")
    grant = field_choice(await body(request), "access", GRANTS, required=True)
    target = await rt.store.get_user(path_id(request, "user_id", "user"))
    if target is None:
        raise NotFound("no such user")
    await rt.store.set_access(note.id, target.id, grant)
    if grant == "read":  # a downgrade from write fences any token they hold
        await rt.hub.revocations.user_access_changed(target.id, note.id)
    return json({"user": {"id": target.id, "name": target.name}, "access": grant})


async def delete_access(request: Request) -> Response:
    rt = rt_of(request)
    note = await managed_note(request, "change sharing")
    target_id = path_id(request, "user_id", "user")
    if not await rt.store.delete_access(note.id, target_id):
        raise NotFound("that user has no grant on this note")
    await rt.hub.revocations.user_access_changed(target_id, note.id)
    return Response(status_code=204)


async def list_revisions(request: Request) -> Response:
    user = await caller(request)
    note, _ = await load_note(request, user)
    revisions = await rt_of(request).store.list_revisions(note.id)
    shown = [_for(user, r.wire(with_content=False), "by") for r in revisions]
    return json({"revisions": shown})


async def get_revision(request: Request) -> Response:
    user = await caller(request)
    note, _ = await load_note(request, user)
    raw = request.path_params["version"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:  # "²".isdigit() is True
        raise BadRequest("version must be a non-negative integer")
    revision = await rt_of(request).store.get_revision(note.id, int(raw))
    if revision is None:
        raise NotFound("no such revision")
    return json(_for(user, revision.wire(), "by"))


# -- admin ---------------------------------------------------------------------------
async def admin(request: Request) -> User:
    user = await caller(request)
    if not is_admin(user):
        raise Forbidden("administrators only")
    return user


async def admin_users(request: Request) -> Response:
    await admin(request)
    users = await rt_of(request).store.list_users()
    return json({"users": [u.wire() for u in users]})


async def admin_patch_user(request: Request) -> Response:
    """A role change and/or disabling (or enabling) an account. An admin
    cannot disable themselves, so one enabled admin always remains."""
    actor = await admin(request)
    rt = rt_of(request)
    data = await body(request)
    role = field_choice(data, "role", tuple(r for r in ROLES if r != "guest"), False)
    disabled = data.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise BadRequest("field 'disabled' must be true or false")
    if role is None and disabled is None:
        raise BadRequest("send 'role', 'disabled' or both")
    target = await rt.store.get_user(path_id(request, "user_id", "user"))
    if target is None:
        raise NotFound("no such user")
    if target.id == actor.id and disabled:
        raise BadRequest("you cannot disable your own account")
    if target.id == actor.id and role not in (None, "admin") and await rt.store.count_admins() <= 1:
        raise BadRequest("cannot demote the last administrator")
    updated = target
    if role is not None:
        updated = await rt.store.set_role(target.id, role)
        if updated.role != target.role:
            await rt.hub.revocations.user_access_changed(target.id, None)
    if disabled is not None and disabled != target.disabled:
        if disabled:
            # Stored first (every authentication reads it), then every token
            # issued so far ends, so enabling again revives none of them.
            updated = await rt.store.set_disabled(target.id, True)
            await rt.signouts.end_user_sessions(target.id)
            await rt.hub.revocations.account_closed(target.id)
        else:
            updated = await rt.store.set_disabled(target.id, False)
        auth_event(request, "account_disabled" if disabled else "account_enabled",
                   user=target.id, by=actor.id)  # fmt: skip
    return json(updated.wire())


async def admin_delete_user(request: Request) -> Response:
    """Delete an account with the notes it owns. Its tokens end at once, its
    sockets close (4403) and its write tokens are fenced on every replica."""
    actor = await admin(request)
    rt = rt_of(request)
    target = await rt.store.get_user(path_id(request, "user_id", "user"))
    if target is None:
        raise NotFound("no such user")
    if target.id == actor.id:
        raise BadRequest("you cannot delete your own account")
    # Disabled first: from here no token of it is accepted and the store
    # refuses its commits, while its tokens are fenced and sockets closed.
    await rt.store.set_disabled(target.id, True)
    await rt.signouts.end_user_sessions(target.id)
    await rt.hub.revocations.account_closed(target.id)
    for note_id in await rt.store.delete_user(target.id):
        await rt.hub.revocations.note_deleted(note_id)
    await rt.hub.revocations.user_access_changed(target.id, None)  # grants on others' notes
    auth_event(request, "account_deleted", user=target.id, by=actor.id)
    return Response(status_code=204)


async def admin_sessions(request: Request) -> Response:
    await admin(request)
    rt = rt_of(request)
    out = []
    for record in await rt.registry.sessions():
        out.append({
            "session": record.session, "user": record.user.wire(), "replica": record.replica,
            "connected_at": record.connected_at,
            "notes": sorted(await rt.registry.notes(record.session)),
        })  # fmt: skip
    return json({"sessions": out})


async def admin_revoke(request: Request) -> Response:
    actor = await admin(request)
    note_id = path_id(request, "note_id", "note")
    fence = await rt_of(request).hub.revocations.revoke(actor, note_id)
    return json({"note": note_id, "fence": fence})


async def admin_kick(request: Request) -> Response:
    """Close the session and end its user's sign-in: the server does not know
    which token a socket was opened with, so every token of that user issued
    so far is refused (on every replica when Redis is configured) and every
    live session of the user is closed as well; reconnecting with any of
    those tokens fails. The user signs in again."""
    actor = await admin(request)
    rt = rt_of(request)
    session = request.path_params["session_id"]
    record = await rt.registry.get(session) if len(session) <= 64 else None
    if record is None:
        raise NotFound("no such session")
    await rt.signouts.end_user_sessions(record.user.id)
    await rt.hub.revocations.kick(session)
    await rt.hub.revocations.end_sessions(record.user)
    auth_event(request, "session_kicked", user=record.user.id, by=actor.id)
    return json({"session": session, "kicked": True})


def route(path: str, **handlers: Endpoint) -> Route:
    """One route per path with a handler per method, so a wrong method gets
    405 with an ``Allow`` header naming every method the path serves."""

    async def dispatch(request: Request) -> Response:
        # Starlette also routes HEAD to GET routes; HEAD is answered as GET.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers), name=path)


ROUTES = [
    route("/api/config", GET=config),
    route("/api/auth/login", POST=login),
    route("/api/auth/register", POST=register),
    route("/api/auth/guest", POST=guest),
    route("/api/auth/refresh", POST=refresh),
    route("/api/auth/logout", POST=logout),
    route(CREDENTIAL_ROUTE, POST=change_password),
    route("/api/me", GET=me),
    route("/api/users/lookup", GET=lookup_user),
    route("/api/notes", GET=list_notes, POST=create_note),
    route("/api/notes/{note_id}", GET=get_note, PATCH=patch_note, DELETE=delete_note),
    route("/api/notes/{note_id}/access", GET=list_access),
    route("/api/notes/{note_id}/access/{user_id}", PUT=put_access, DELETE=delete_access),
    route("/api/notes/{note_id}/revisions", GET=list_revisions),
    route("/api/notes/{note_id}/revisions/{version}", GET=get_revision),
    route("/api/admin/users", GET=admin_users),
    route("/api/admin/users/{user_id}", PATCH=admin_patch_user, DELETE=admin_delete_user),
    route("/api/admin/sessions", GET=admin_sessions),
    route("/api/admin/notes/{note_id}/revoke", POST=admin_revoke),
    route("/api/admin/sessions/{session_id}/kick", POST=admin_kick),
]
