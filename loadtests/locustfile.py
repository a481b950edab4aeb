"""locust scenarios for collab over WebSocket protocol v1.

Users (pick by class name or by tag, see loadtests/README.md):

- ``ViewerUser`` (tag ``viewers``): subscribes to a shared note and counts
  ``edited`` pushes; reports fan-out latency and any version gap.
- ``EditorUser`` (tag ``editors``): acquires a shared note's token (queuing
  when busy), types a few ``changes`` batches, releases.
- ``ContentionUser`` (tag ``contention``): everyone queues for ONE note,
  holds it briefly, releases; reports time spent queued (``WAIT``).

Thresholds are options, not code: ``--collab-max-error-rate`` (fraction,
default 0.01) and ``--collab-max-p99-ms`` (default 1000; over every ``WS``
and ``PUSH`` entry; ``HTTP`` set-up and ``WAIT`` count only as errors). The
``quitting`` listener sets the exit code to 1 when one is exceeded or nothing
was measured.

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 \\
        -u 50 -r 10 -t 60s --csv out/run ViewerUser EditorUser
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

# locust puts this file's folder on sys.path, not the repository root that
# holds the ``loadtests`` package.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402
from locust import User, between, events, tag, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadtests.locust_ws import (  # noqa: E402
    Frame,
    Http,
    ProtocolError,
    Reporter,
    WsSession,
    report_edited,
    ws_url_of,
)
from loadtests.optime import timed_op  # noqa: E402


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    group = parser.add_argument_group("collab")
    group.add_argument(
        "--collab-max-error-rate",
        type=float,
        default=0.01,
        env_var="LOCUST_COLLAB_MAX_ERROR_RATE",
        help="fail the run above this failure ratio",
    )
    group.add_argument(
        "--collab-max-p99-ms",
        type=float,
        default=1000.0,
        env_var="LOCUST_COLLAB_MAX_P99_MS",
        help="fail the run when a WS/PUSH entry's p99 exceeds this",
    )
    group.add_argument(
        "--collab-notes",
        type=int,
        default=4,
        env_var="LOCUST_COLLAB_NOTES",
        help="shared notes viewers and editors spread over",
    )
    group.add_argument(
        "--collab-account-prefix",
        default="locust",
        env_var="LOCUST_COLLAB_ACCOUNT_PREFIX",
        help="accounts are PREFIX-N, registered on first use",
    )
    group.add_argument(
        "--collab-password", default="locust-password-123", env_var="LOCUST_COLLAB_PASSWORD"
    )
    group.add_argument(
        "--collab-users-per-account",
        type=int,
        default=10,
        env_var="LOCUST_COLLAB_USERS_PER_ACCOUNT",
        help="sockets per account (keep under COLLAB_MAX_SOCKETS_PER_USER)",
    )


class Shared:
    """Per-process set-up shared by all users: the note owner, its notes and
    the numbering of user accounts. Created once, lazily, under a lock."""

    lock = Semaphore()
    owner: Frame | None = None
    notes: list[str] = []
    contention_note: str = ""
    counter = 0

    @classmethod
    def ensure(cls, http: Http, opts: Any) -> None:
        with cls.lock:
            if cls.owner is not None:
                return
            owner = http.account(f"{opts.collab_account_prefix}-owner", opts.collab_password)
            token = owner["token"]
            made = []
            for i in range(opts.collab_notes + 1):
                body = {"title": f"locust {i}", "content": "", "visibility": "public"}
                resp = http.call("POST", "/api/notes", "create note", token, body)
                made.append(str(resp.json()["id"]))
            cls.notes, cls.contention_note = made[:-1], made[-1]
            cls.owner = owner

    accounts: dict[str, Frame] = {}
    account_locks: dict[str, Semaphore] = {}

    @classmethod
    def account(cls, http: Http, name: str, password: str) -> Frame:
        """One registration/login per account and process (each costs the
        server an argon2 hash), shared by the users on that account."""
        with cls.lock:
            gate = cls.account_locks.setdefault(name, Semaphore())
        with gate:
            if name not in cls.accounts:
                cls.accounts[name] = http.account(name, password)
            return cls.accounts[name]

    @classmethod
    def next_index(cls) -> int:
        with cls.lock:
            cls.counter += 1
            return cls.counter


class CollabUser(User):
    """Base: an account, one socket, the shared notes."""

    abstract = True
    wait_time = between(0.5, 1.5)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.reporter = Reporter(environment)
        self.http = Http(self.host or "", self.reporter)
        self.ws: WsSession | None = None
        self.user_id = ""
        self.index = 0
        self.version: dict[str, int] = {}

    @property
    def opts(self) -> Any:
        return self.environment.parsed_options

    def on_start(self) -> None:
        Shared.ensure(self.http, self.opts)
        self.index = Shared.next_index()
        n = self.index // max(1, self.opts.collab_users_per_account)
        acc = Shared.account(
            self.http, f"{self.opts.collab_account_prefix}-{n}", self.opts.collab_password
        )
        self.user_id = acc["user"]["id"]
        self.ws = WsSession(ws_url_of(self.host or ""), self.reporter, self.on_push)
        self.ws.connect(acc["token"])

    def on_stop(self) -> None:
        if self.ws is not None:
            self.ws.close()

    def share(self, note: str) -> None:
        assert Shared.owner is not None
        self.http.call(
            "PUT",
            f"/api/notes/{note}/access/{self.user_id}",
            "share note",
            Shared.owner["token"],
            {"access": "write"},
        )

    def subscribe(self, note: str) -> Frame:
        assert self.ws is not None
        snap = self.ws.request("subscribe", note=note)
        self.version[note] = int(snap["version"])
        return snap

    def on_push(self, frame: Frame, now_ns: int) -> None:
        if frame.get("type") != "edited":
            return
        note, version = str(frame["note"]), int(frame["version"])
        report_edited(self.reporter, frame, now_ns)
        known = self.version.get(note)
        if known is not None and version != known + 1:
            self.reporter.fire(
                "PUSH",
                "edited gap",
                0.0,
                0,
                ProtocolError(f"expected v{known + 1}, got v{version}"),
            )
        self.version[note] = max(version, known or 0)


class ViewerUser(CollabUser):
    """Watches one shared note."""

    def on_start(self) -> None:
        super().on_start()
        self.note = Shared.notes[self.index % len(Shared.notes)]
        self.subscribe(self.note)

    @tag("viewers")
    @task
    def watch(self) -> None:
        gevent.sleep(1.0)  # pushes are handled by the reader greenlet


class EditorUser(CollabUser):
    """Takes turns writing on a shared note: acquire (queue), type, release."""

    batches = (3, 8)  # edits per turn
    typing_pause_s = (0.05, 0.2)
    grant_hook: Any = None  # set while waiting for a deferred ``granted``

    def on_start(self) -> None:
        super().on_start()
        self.note = Shared.notes[self.index % len(Shared.notes)]
        self.share(self.note)
        self.length = len(self.subscribe(self.note)["content"])

    def take_token(self, note: str, wait_name: str) -> int | None:
        """Acquire (waiting in the queue); returns the fence or None."""
        assert self.ws is not None
        granted = gevent.event.AsyncResult()
        rid_holder: dict[str, Any] = {}

        def on_grant(frame: Frame, now_ns: int) -> None:
            if frame.get("type") == "granted" and frame.get("rid") == rid_holder.get("rid"):
                granted.set(frame)

        self.grant_hook = on_grant
        reply = self.ws.request("acquire", note=note, wait=True)
        if reply["type"] == "granted":
            return int(reply["fence"])
        if reply["type"] != "queued":
            return None
        rid_holder["rid"] = reply["rid"]
        started = time.perf_counter()
        try:
            frame = granted.get(timeout=60)
        except gevent.Timeout:
            self.reporter.fire(
                "WAIT",
                wait_name,
                (time.perf_counter() - started) * 1000,
                0,
                ProtocolError("not granted within 60 s"),
            )
            self.ws.request("release", note=note)
            return None
        finally:
            self.grant_hook = None
        self.reporter.fire("WAIT", wait_name, (time.perf_counter() - started) * 1000, 0)
        return int(frame["fence"])

    def on_push(self, frame: Frame, now_ns: int) -> None:
        if frame.get("type") == "granted" and self.grant_hook is not None:
            self.grant_hook(frame, now_ns)
        if frame.get("type") == "edited" and frame.get("note") == getattr(self, "note", None):
            self.length += sum(len(c["ins"]) - c["del"] for c in frame.get("changes", []))
        super().on_push(frame, now_ns)

    def type_batch(self, note: str, fence: int) -> None:
        """One edit: a ``changes`` batch of a few keystrokes at the end."""
        assert self.ws is not None
        word = "".join(random.choices("abcdefgh ", k=random.randint(1, 6)))
        changes = [{"at": self.length + i, "del": 0, "ins": ch} for i, ch in enumerate(word)]
        reply = self.ws.request(
            "edit",
            note=note,
            fence=fence,
            base=self.version.get(note, 0),
            op=timed_op(),
            changes=changes,
            expected=("stale",),
        )
        if reply["type"] == "ack":
            self.version[note] = int(reply["version"])
            self.length += len(word)
        else:  # stale: someone else's edit is still in flight to us; resync
            snap = self.subscribe(note)
            self.length = len(snap["content"])

    @tag("editors")
    @task
    def write_turn(self) -> None:
        assert self.ws is not None
        fence = self.take_token(self.note, "token wait (editors)")
        if fence is None:
            return
        try:
            for _ in range(random.randint(*self.batches)):
                self.type_batch(self.note, fence)
                gevent.sleep(random.uniform(*self.typing_pause_s))
        finally:
            self.ws.request("release", note=self.note, fence=fence)


class ContentionUser(EditorUser):
    """Everyone queues for the same note; FIFO hand-off under load."""

    def on_start(self) -> None:
        CollabUser.on_start(self)
        self.note = Shared.contention_note
        self.share(self.note)
        self.length = len(self.subscribe(self.note)["content"])

    @tag("contention")
    @task
    def write_turn(self) -> None:
        assert self.ws is not None
        fence = self.take_token(self.note, "token wait (contention)")
        if fence is None:
            return
        try:
            self.type_batch(self.note, fence)
            gevent.sleep(random.uniform(0.05, 0.15))
        finally:
            self.ws.request("release", note=self.note, fence=fence)


# Set-up HTTP calls are argon2-bound by design and WAIT is queueing time:
# the latency threshold is about the protocol itself.
P99_CHECKED = ("WS", "PUSH")


def threshold_failures(environment: Environment) -> list[str]:
    """Why the run failed its thresholds (empty when it passed)."""
    opts = environment.parsed_options
    assert opts is not None
    stats = environment.stats
    reasons = []
    if stats.total.num_requests == 0:
        reasons.append("no requests were measured")
    elif stats.total.fail_ratio > opts.collab_max_error_rate:
        reasons.append(f"error rate {stats.total.fail_ratio:.4f} > {opts.collab_max_error_rate}")
    for entry in stats.entries.values():
        if entry.method not in P99_CHECKED or entry.num_requests == 0:
            continue
        p99 = entry.get_response_time_percentile(0.99)
        if p99 > opts.collab_max_p99_ms:
            reasons.append(
                f"{entry.method} {entry.name} p99 {p99:.0f} ms > {opts.collab_max_p99_ms}"
            )
    return reasons


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _enforce_thresholds(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:
        return
    reasons = threshold_failures(environment)
    for reason in reasons:
        print(f"collab threshold failed: {reason}", file=sys.stderr)
    if reasons:
        environment.process_exit_code = 1
