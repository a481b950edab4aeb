"""The bytes the benchmark exchanges with the Hocuspocus peer (pure, no I/O).

Hocuspocus frames every WebSocket message as lib0 ``varString`` document name,
``varUint`` message type, then the type's payload (y-protocols sync for Yjs
updates). The harness needs only a sliver of it: authenticate to a document,
ask for its state, send one text insert per edit, read the server's
acknowledgement (``SyncStatus``), its stateless JSON, and the updates it
broadcasts. The writer's inserts are the edit's ``op`` string (a UUIDv7 that
carries the send time, ``loadtests/optime.py``), always appended after the
writer's previous insert, so an update says by itself which edits it holds:
edit ``n`` of a fresh document spans clock ``(n - 1) * OP_LEN`` to
``n * OP_LEN`` of the writer's Yjs client. Yjs may merge consecutive inserts
into one item (an update relayed between instances does), so one update can
carry several edits; ``edits_in_update`` splits it back.
"""

from __future__ import annotations

from dataclasses import dataclass

OP_LEN = 36  # characters of a canonical UUID string
TEXT_KEY = "content"  # the root Y.Text the edits go to

# Hocuspocus message types (@hocuspocus/server src/types.ts) and sub-types.
MSG_SYNC = 0
MSG_AUTH = 2
MSG_SYNC_REPLY = 4
MSG_STATELESS = 5
MSG_SYNC_STATUS = 8
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2
AUTH_TOKEN = 0
AUTH_DENIED = 1
AUTH_OK = 2

_CONTENT_STRING = 4  # Yjs struct ref of ContentString
_BIT_ORIGIN = 0x80
_BIT_RIGHT = 0x40
_BIT_PARENT_SUB = 0x20


class WireError(ValueError):
    """A message this module cannot read."""


def var_uint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def var_string(text: str) -> bytes:
    raw = text.encode()
    return var_uint(len(raw)) + raw


def var_bytes(raw: bytes) -> bytes:
    return var_uint(len(raw)) + raw


class Reader:
    """lib0 decoding over a bytes object."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def uint(self) -> int:
        n, shift, buf = 0, 0, self.buf
        while True:
            if self.pos >= len(buf):
                raise WireError("truncated varUint")
            b = buf[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7

    def raw(self) -> bytes:
        size = self.uint()
        end = self.pos + size
        if end > len(self.buf):
            raise WireError("truncated bytes")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def string(self) -> str:
        return self.raw().decode()

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise WireError("truncated byte")
        b = self.buf[self.pos]
        self.pos += 1
        return b


# --- client -> server -------------------------------------------------------


def auth(doc: str, token: str) -> bytes:
    return var_string(doc) + var_uint(MSG_AUTH) + var_uint(AUTH_TOKEN) + var_string(token)


def sync_step1(doc: str) -> bytes:
    """Ask for the whole document (an empty state vector)."""
    return var_string(doc) + var_uint(MSG_SYNC) + var_uint(SYNC_STEP1) + var_bytes(var_uint(0))


def stateless(doc: str, payload: str) -> bytes:
    return var_string(doc) + var_uint(MSG_STATELESS) + var_string(payload)


def insert_update(client: int, clock: int, text: str) -> bytes:
    """A Yjs v1 update: ``text`` inserted by ``client`` at ``clock``, right after
    the same client's character at ``clock - 1`` (or first in the root text)."""
    out = bytearray(var_uint(1) + var_uint(1) + var_uint(client) + var_uint(clock))
    if clock > 0:
        out.append(_CONTENT_STRING | _BIT_ORIGIN)
        out += var_uint(client) + var_uint(clock - 1)
    else:
        out.append(_CONTENT_STRING)
        out += var_uint(1) + var_string(TEXT_KEY)  # parent: a root type by name
    out += var_string(text)
    out += var_uint(0)  # empty delete set
    return bytes(out)


def edit(doc: str, client: int, clock: int, text: str) -> bytes:
    return (
        var_string(doc)
        + var_uint(MSG_SYNC)
        + var_uint(SYNC_UPDATE)
        + var_bytes(insert_update(client, clock, text))
    )


# --- server -> client -------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One server message: ``kind`` is ``auth_ok``, ``auth_denied``,
    ``step1``, ``step2``, ``update``, ``status``, ``stateless`` or ``other``."""

    doc: str
    kind: str
    update: bytes = b""
    text: str = ""
    ok: bool = True


def parse(raw: bytes) -> Message:
    r = Reader(raw)
    doc = r.string()
    mtype = r.uint()
    if mtype in (MSG_SYNC, MSG_SYNC_REPLY):
        sub = r.uint()
        kind = {SYNC_STEP1: "step1", SYNC_STEP2: "step2", SYNC_UPDATE: "update"}.get(sub)
        if kind is None:
            raise WireError(f"unknown sync message {sub}")
        return Message(doc, kind, update=r.raw())
    if mtype == MSG_SYNC_STATUS:
        return Message(doc, "status", ok=r.uint() == 1)
    if mtype == MSG_STATELESS:
        return Message(doc, "stateless", text=r.string())
    if mtype == MSG_AUTH:
        sub = r.uint()
        if sub == AUTH_OK:
            return Message(doc, "auth_ok", text=r.string())
        if sub == AUTH_DENIED:
            return Message(doc, "auth_denied", text=r.string(), ok=False)
    return Message(doc, "other")


@dataclass(frozen=True)
class Run:
    """Consecutive text one client inserted, starting at ``clock``."""

    client: int
    clock: int
    text: str


def text_runs(update: bytes) -> list[Run]:
    """The string items of a Yjs v1 update. Anything else (deletions, other
    content) raises ``WireError``: the benchmark writes only text inserts."""
    r = Reader(update)
    runs: list[Run] = []
    for _ in range(r.uint()):
        count, client, clock = r.uint(), r.uint(), r.uint()
        for _ in range(count):
            info = r.byte()
            if info & 0x1F != _CONTENT_STRING:
                raise WireError(f"struct ref {info & 0x1F} is not a string insert")
            if info & _BIT_ORIGIN:
                r.uint(), r.uint()
            if info & _BIT_RIGHT:
                r.uint(), r.uint()
            if not info & (_BIT_ORIGIN | _BIT_RIGHT):
                if r.uint() == 1:
                    r.string()  # root type name
                else:
                    r.uint(), r.uint()  # parent item id
                if info & _BIT_PARENT_SUB:
                    r.string()
            text = r.string()
            runs.append(Run(client, clock, text))
            clock += len(text.encode("utf-16-le")) // 2
    return runs


def edits_in_update(update: bytes) -> list[tuple[int, str]]:
    """``(version, op)`` of every whole edit in a broadcast update."""
    out = []
    for run in text_runs(update):
        if run.clock % OP_LEN or len(run.text) % OP_LEN:
            raise WireError(f"insert at {run.clock} of {len(run.text)} chars is not whole edits")
        first = run.clock // OP_LEN + 1
        for i in range(len(run.text) // OP_LEN):
            out.append((first + i, run.text[i * OP_LEN : (i + 1) * OP_LEN]))
    return out


def text_length(update: bytes) -> int:
    """Characters of text in a full-state update (SyncStep2 of a document)."""
    return sum(len(run.text) for run in text_runs(update))
