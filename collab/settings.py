"""One typed settings object, read from ``COLLAB_*`` environment variables.

Every limit the server enforces is a field here, so operators can find and tune
all of them in one place (docs/operations.md lists them). ``Settings.from_env``
validates everything at start-up and raises ``SettingsError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from collab.protocol import normalise_origin

PREFIX = "COLLAB_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment key."""


@dataclass(frozen=True)
class Settings:
    # --- network / process -------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    graceful_shutdown_s: float = 20.0
    drain_delay_s: float = 0.0
    replica_id: str = ""
    log_level: str = "info"
    static_dir: str = ""
    # Peers whose X-Real-IP header is believed (the gateway); comma-separated CIDRs.
    # Loopback only by default: believing whole private ranges let any pod or
    # SNATed balancer choose its own address and dodge every per-IP brake.
    trusted_proxies: str = "127.0.0.0/8,::1/128"
    # /metrics on its own listener (0 = on the HTTP port, as before).
    metrics_port: int = 0
    # /readyz check details for callers that are not on loopback.
    readyz_details: bool = False
    # Origins a browser may open /ws from besides the page's own (comma-separated).
    allowed_origins: str = ""
    # uvicorn, when it faces clients directly (embedded mode): slow-client bounds.
    http_header_timeout_s: float = 10.0
    http_keepalive_s: float = 5.0
    http_max_header_bytes: int = 16384
    http_max_concurrency: int = 16384

    # --- backends ------------------------------------------------------------
    # Unset database_url -> embedded SQLite at sqlite_path; unset redis_url ->
    # in-process leases and bus. Both must be set together for multi-replica use.
    database_url: str = ""
    database_read_url: str = ""
    sqlite_path: str = "collab-data/collab.db"
    redis_url: str = ""
    redis_prefix: str = "collab"
    redis_socket_timeout_s: float = 2.0
    redis_pool_max: int = 32
    # Redis topology. ``standalone``: COLLAB_REDIS_URL is the server.
    # ``sentinel``: high availability without sharding; COLLAB_REDIS_URL lists
    # the sentinels (comma-separated redis:// URLs; their user/password, if
    # any, are the master's) and the master is looked up by name; a failover is
    # treated as Redis losing its data (docs/design.md, rule 8). ``cluster``:
    # COLLAB_REDIS_URL lists seed nodes of a Redis Cluster (rule 11).
    redis_mode: str = "standalone"
    redis_sentinel_master: str = ""
    # Password of the sentinels themselves (may differ from the master's).
    redis_sentinel_password: str = ""
    bus_ping_interval_s: float = 1.0
    bus_ping_timeout_s: float = 1.0
    bus_reconnect_min_s: float = 0.05
    bus_reconnect_max_s: float = 5.0
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Group commit: at most this many edits (of different notes) share one
    # transaction and one WAL flush; 64 at most (PostgreSQL's per-backend
    # subtransaction cache: each edit runs in a savepoint).
    db_commit_batch_max: int = 64
    # Allocations between young-generation garbage collections in `collab
    # serve` (collab/cli.py, tune_gc); 0 keeps Python's default (700).
    gc_young_threshold: int = 50_000
    db_connect_timeout_s: float = 5.0
    db_command_timeout_s: float = 30.0
    db_replica_retry_s: float = 5.0
    sqlite_busy_timeout_ms: int = 5000
    migrate_on_start: bool = True

    # --- auth ----------------------------------------------------------------
    jwt_secret: str = ""
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "collab"
    jwt_audience: str = "collab"
    jwt_ttl_s: int = 3600
    token_expiry_grace_s: float = 30.0
    allow_signup: bool = True
    allow_guest: bool = True
    bootstrap_admin_username: str = ""
    bootstrap_admin_password: str = ""
    min_password_chars: int = 8
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_lockout_s: float = 60.0
    # Per account from every address: much higher, with lockouts that double.
    login_max_failures_per_account: int = 50
    login_max_lockout_s: float = 3600.0
    # Budgets checked before any password hashing (per client address, global).
    login_per_ip_per_min: float = 60.0
    login_burst_per_ip: int = 60
    login_per_min: float = 1200.0
    login_burst: int = 300
    register_per_ip_per_min: float = 10.0
    register_burst_per_ip: int = 20
    register_per_min: float = 300.0
    register_burst: int = 100
    guest_per_ip_per_min: float = 30.0
    guest_burst_per_ip: int = 60
    guest_per_min: float = 1200.0
    guest_burst: int = 300
    lookup_per_user_per_min: float = 60.0
    lookup_burst_per_user: int = 30
    # argon2 runs in this many worker threads; more waiting than the queue
    # holds are refused with 429 instead of piling up.
    hash_workers: int = 2
    hash_queue_max: int = 64
    # Refresh chains end this long after the password sign-in.
    session_max_age_s: int = 7 * 24 * 3600

    # --- write token -------------------------------------------------------
    heartbeat_ms: int = 5000
    lease_ttl_ms: int = 15000
    lock_delay_ms: int = 2000
    reconcile_interval_s: float = 5.0
    # A holder who has not typed for this long while someone waits is handed
    # off as a clean release (0 = never); warned this long before.
    idle_handoff_s: float = 120.0
    idle_warning_s: float = 15.0
    # The holder's caret reaches viewers at most this often (the latest wins).
    caret_interval_ms: int = 100
    # A waiter may ask the holder for the token at most this often per note.
    edit_request_interval_s: float = 10.0

    # --- limits --------------------------------------------------------------
    max_frame_bytes: int = 65536
    max_note_chars: int = 1_000_000
    max_title_chars: int = 200
    max_changes_per_edit: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    hello_timeout_s: float = 10.0
    outbound_queue_max: int = 1024
    # Bytes of frames one socket may have waiting (plus one frame of any size
    # into an empty buffer): a client that does not read is dropped past it.
    outbound_buffer_bytes: int = 8 * 1024 * 1024
    max_subscriptions_per_socket: int = 100
    max_sockets_per_user: int = 20
    max_bad_frames: int = 20
    edit_rate_per_s: float = 100.0
    edit_burst: int = 200
    acquire_rate_per_s: float = 5.0
    acquire_burst: int = 20
    frame_rate_per_s: float = 200.0
    frame_burst: int = 400
    connect_rate_per_ip_per_s: float = 20.0
    connect_burst_per_ip: int = 60
    sync_max_edits: int = 1000
    revision_every_versions: int = 100
    rid_max_chars: int = 64

    # --- storage quotas, edit-log retention, accounts -------------------------
    # One self-registered account grew the database by 21 MB in 0.3 s: what a
    # user may own is bounded, checked inside the store's own transaction.
    # Admins are exempt. 0 turns a quota off.
    max_notes_per_user: int = 1000
    max_bytes_per_user: int = 100 * 1024 * 1024  # UTF-8 bytes of owned notes' text
    note_create_per_user_per_min: float = 30.0
    note_create_burst_per_user: int = 30
    # The edit log would grow forever: payloads of edits that are not among a
    # note's newest ``edit_log_keep_per_note``, are older than
    # ``edit_log_keep_s`` and are covered by a saved revision are dropped; their
    # op ids are kept ``edit_ops_keep_s`` longer, so retries stay idempotent.
    edit_log_keep_per_note: int = 1000
    edit_log_keep_s: float = 7 * 24 * 3600.0
    edit_ops_keep_s: float = 30 * 24 * 3600.0
    edit_log_compact_interval_s: float = 600.0  # 0 = never compact
    edit_log_compact_batch: int = 500  # rows per transaction

    # --- socket admission ---------------------------------------------------------
    # One client address held any number of open sockets: open sockets per
    # client address (after trusted-proxy resolution) are capped per replica,
    # counted before the connection's first await. Generous by default, since
    # a whole office behind one NAT shares an address.
    max_sockets_per_ip: int = 256

    # --- fault injection (tests only; leave at 0 in production) -------------
    # Seconds to stall between the Redis grant and the PostgreSQL fence
    # advance, so a fault test can kill the replica inside that window.
    fault_stall_after_grant_s: float = 0.0

    # ------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return not self.database_url

    @property
    def distributed_leases(self) -> bool:
        return bool(self.redis_url)

    def redacted(self) -> dict[str, Any]:
        """All settings with secrets masked, for `collab check-config` and logs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            elif f.name.endswith("_url") and value:
                value = _redact_url(str(value))
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = _with_secret_files(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = PREFIX + f.name.upper()
            if key not in source:
                continue
            values[f.name] = _coerce(key, str(source[key]), f.type)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_defaults_for_embedded(self) -> Settings:
        """Embedded mode may run without a configured JWT secret: one is created
        next to the SQLite file and reused across restarts, so tokens survive."""
        if self.jwt_secret or not self.embedded:
            return self
        path = Path(self.sqlite_path).parent / "jwt-secret"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return dataclasses.replace(self, jwt_secret=path.read_text().strip())

    def validate(self) -> None:
        def need(cond: bool, name: str, why: str) -> None:
            if not cond:
                raise SettingsError(f"{PREFIX}{name.upper()}: {why}")

        need(0 < self.port < 65536, "port", "must be between 1 and 65535")
        need(self.workers >= 1, "workers", "must be at least 1")
        need(self.graceful_shutdown_s > 0, "graceful_shutdown_s", "must be positive")
        need(self.drain_delay_s >= 0, "drain_delay_s", "must not be negative")
        need(self.heartbeat_ms >= 100, "heartbeat_ms", "must be at least 100")
        need(
            self.lease_ttl_ms >= 2 * self.heartbeat_ms,
            "lease_ttl_ms",
            "must be at least twice COLLAB_HEARTBEAT_MS",
        )
        need(self.lock_delay_ms >= 0, "lock_delay_ms", "must not be negative")
        need(self.idle_handoff_s >= 0, "idle_handoff_s", "must not be negative (0 turns it off)")
        need(
            self.idle_handoff_s == 0 or 0 < self.idle_warning_s < self.idle_handoff_s,
            "idle_warning_s",
            "must be above 0 and below idle_handoff_s",
        )
        need(self.caret_interval_ms >= 10, "caret_interval_ms", "must be at least 10")
        need(self.edit_request_interval_s >= 0, "edit_request_interval_s", "must not be negative")
        need(self.max_frame_bytes >= 1024, "max_frame_bytes", "must be at least 1024")
        need(self.max_note_chars >= 1, "max_note_chars", "must be positive")
        need(self.outbound_queue_max >= 8, "outbound_queue_max", "must be at least 8")
        need(self.outbound_buffer_bytes >= 65536, "outbound_buffer_bytes", "must be at least 65536")
        need(self.jwt_algorithm in _ALGORITHMS, "jwt_algorithm", f"one of {sorted(_ALGORITHMS)}")
        need(self.jwt_ttl_s >= 60, "jwt_ttl_s", "must be at least 60")
        need(
            not self.jwt_secret or len(self.jwt_secret) >= 32,
            "jwt_secret",
            "must be at least 32 characters",
        )
        need(
            self.embedded or bool(self.jwt_secret),
            "jwt_secret",
            "is required when COLLAB_DATABASE_URL is set (replicas must share it)",
        )
        need(
            not self.database_url or self.database_url.startswith(("postgres://", "postgresql://")),
            "database_url",
            "must be a postgresql:// URL (leave unset for embedded SQLite)",
        )
        need(
            not self.database_read_url or bool(self.database_url),
            "database_read_url",
            "needs COLLAB_DATABASE_URL as well",
        )
        need(
            not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
            "redis_url",
            "must be a redis:// or rediss:// URL",
        )
        # Redis topology: several addresses only where a topology lists them,
        # every one a redis:// URL without a placeholder password.
        redis_urls = [part.strip() for part in self.redis_url.split(",") if part.strip()]
        need(self.redis_mode in _REDIS_MODES, "redis_mode", f"one of {sorted(_REDIS_MODES)}")
        need(
            len(redis_urls) <= 1 or self.redis_mode != "standalone",
            "redis_url",
            "lists several addresses; set COLLAB_REDIS_MODE=sentinel or cluster",
        )
        need(
            self.redis_mode == "standalone" or bool(self.redis_url),
            "redis_mode",
            "needs COLLAB_REDIS_URL (the sentinels or the cluster's seed nodes)",
        )
        need(
            all(u.startswith(("redis://", "rediss://")) for u in redis_urls)
            or self.redis_mode == "standalone",
            "redis_url",
            "must list redis:// or rediss:// URLs in sentinel and cluster mode",
        )
        need(
            not any(example_secret(p) for u in redis_urls for p in url_passwords(u)),
            "redis_url",
            "carries a documented example or placeholder password",
        )
        need(
            self.redis_mode != "sentinel" or bool(self.redis_sentinel_master),
            "redis_sentinel_master",
            "is required in sentinel mode (the master's name in the sentinels)",
        )
        need(
            not example_secret(self.redis_sentinel_password),
            "redis_sentinel_password",
            "is a documented example or placeholder; choose a real password",
        )
        weak = weak_jwt_secret(self.jwt_secret) if self.jwt_secret else None
        need(weak is None, "jwt_secret", str(weak))
        need(
            not example_secret(self.bootstrap_admin_password),
            "bootstrap_admin_password",
            "is a documented example or placeholder; choose a real password",
        )
        for name in ("database_url", "database_read_url", "redis_url"):
            need(
                not any(example_secret(p) for p in url_passwords(getattr(self, name))),
                name,
                "carries a documented example or placeholder password",
            )
        need(
            bool(self.bootstrap_admin_username) == bool(self.bootstrap_admin_password),
            "bootstrap_admin_password",
            "set both COLLAB_BOOTSTRAP_ADMIN_USERNAME and _PASSWORD, or neither",
        )
        need(
            not self.bootstrap_admin_password
            or len(self.bootstrap_admin_password) >= self.min_password_chars,
            "bootstrap_admin_password",
            f"must be at least {self.min_password_chars} characters",
        )
        need(
            self.db_pool_max >= self.db_pool_min >= 1, "db_pool_max", "must be >= db_pool_min >= 1"
        )
        need(
            self.gc_young_threshold == 0 or 700 <= self.gc_young_threshold <= 1_000_000,
            "gc_young_threshold",
            "must be 0 (Python's default) or between 700 and 1000000",
        )
        need(
            1 <= self.db_commit_batch_max <= 64,
            "db_commit_batch_max",
            "must be between 1 (no group commit) and 64",
        )
        # Storage quotas, edit-log retention (0 turns a quota or the compactor off).
        need(self.max_notes_per_user >= 0, "max_notes_per_user", "must not be negative (0: off)")
        need(self.max_bytes_per_user >= 0, "max_bytes_per_user", "must not be negative (0: off)")
        need(
            self.note_create_per_user_per_min > 0,
            "note_create_per_user_per_min",
            "must be positive",
        )
        need(
            self.note_create_burst_per_user >= 1, "note_create_burst_per_user", "must be at least 1"
        )
        need(self.edit_log_keep_per_note >= 1, "edit_log_keep_per_note", "must be at least 1")
        need(self.edit_log_keep_s >= 0, "edit_log_keep_s", "must not be negative")
        need(
            self.edit_ops_keep_s >= self.edit_log_keep_s,
            "edit_ops_keep_s",
            "must be at least COLLAB_EDIT_LOG_KEEP_S (op ids outlive payloads)",
        )
        need(
            self.edit_log_compact_interval_s >= 0,
            "edit_log_compact_interval_s",
            "must not be negative (0: off)",
        )
        need(self.edit_log_compact_batch >= 1, "edit_log_compact_batch", "must be at least 1")
        need(self.log_level in _LOG_LEVELS, "log_level", f"one of {sorted(_LOG_LEVELS)}")
        need(0 <= self.metrics_port < 65536, "metrics_port", "must be 0 (off) or a port")
        need(
            self.metrics_port != self.port or self.metrics_port == 0,
            "metrics_port",
            "must differ from COLLAB_PORT",
        )
        need(
            self.metrics_port == 0 or self.workers == 1,
            "metrics_port",
            "needs COLLAB_WORKERS=1 (one process owns the metrics listener)",
        )
        need(self.http_max_header_bytes >= 1024, "http_max_header_bytes", "must be at least 1024")
        need(
            self.login_max_lockout_s >= self.login_lockout_s,
            "login_max_lockout_s",
            "must be at least COLLAB_LOGIN_LOCKOUT_S",
        )
        need(
            self.session_max_age_s >= self.jwt_ttl_s,
            "session_max_age_s",
            "must be at least COLLAB_JWT_TTL_S",
        )
        need(self.hash_queue_max >= 0, "hash_queue_max", "must not be negative")
        need(self.max_sockets_per_ip >= 1, "max_sockets_per_ip", "must be at least 1")
        try:
            self.origins()
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}ALLOWED_ORIGINS: {exc}") from None
        try:
            self.proxy_networks()
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}TRUSTED_PROXIES: {exc}") from None
        for name in _POSITIVE:
            need(getattr(self, name) > 0, name, "must be positive")

    def proxy_networks(self) -> tuple[IPNetwork, ...]:
        """The CIDRs of ``COLLAB_TRUSTED_PROXIES``; commas, with or without spaces."""
        return tuple(
            ipaddress.ip_network(part.strip())
            for part in self.trusted_proxies.split(",")
            if part.strip()
        )

    def origins(self) -> frozenset[str]:
        """``COLLAB_ALLOWED_ORIGINS`` normalised (``scheme://host[:port]``)."""
        out = set()
        for part in self.allowed_origins.split(","):
            if part.strip():
                origin = normalise_origin(part.strip())
                if origin is None:
                    raise ValueError(f"{part.strip()!r} is not an origin like https://host[:port]")
                out.add(origin)
        return frozenset(out)

    @property
    def lease_ttl_s(self) -> float:
        return self.lease_ttl_ms / 1000.0


_SECRET_FIELDS = {"jwt_secret", "bootstrap_admin_password", "redis_sentinel_password"}
# Secrets that may instead be read from a file named by ``<KEY>_FILE`` (mounted
# secrets stay out of the environment, /proc and crash dumps).
SECRET_FILE_KEYS = (
    "JWT_SECRET",
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "REDIS_URL",
    "BOOTSTRAP_ADMIN_PASSWORD",
    "REDIS_SENTINEL_PASSWORD",
)

_ALGORITHMS = {"HS256", "HS384", "HS512"}
_REDIS_MODES = {"standalone", "sentinel", "cluster"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}
_POSITIVE = (
    "max_title_chars",
    "max_changes_per_edit",
    "max_body_bytes",
    "hello_timeout_s",
    "max_subscriptions_per_socket",
    "max_sockets_per_user",
    "max_bad_frames",
    "edit_rate_per_s",
    "edit_burst",
    "acquire_rate_per_s",
    "acquire_burst",
    "frame_rate_per_s",
    "frame_burst",
    "connect_rate_per_ip_per_s",
    "connect_burst_per_ip",
    "sync_max_edits",
    "revision_every_versions",
    "reconcile_interval_s",
    "login_max_failures",
    "db_connect_timeout_s",
    "db_command_timeout_s",
    "db_replica_retry_s",
    "sqlite_busy_timeout_ms",
    "redis_socket_timeout_s",
    "redis_pool_max",
    "bus_ping_interval_s",
    "bus_ping_timeout_s",
    "bus_reconnect_min_s",
    "bus_reconnect_max_s",
    "login_max_failures_per_ip",
    "login_lockout_s",
    "token_expiry_grace_s",
    "login_max_failures_per_account",
    "login_per_ip_per_min",
    "login_burst_per_ip",
    "login_per_min",
    "login_burst",
    "register_per_ip_per_min",
    "register_burst_per_ip",
    "register_per_min",
    "register_burst",
    "guest_per_ip_per_min",
    "guest_burst_per_ip",
    "guest_per_min",
    "guest_burst",
    "lookup_per_user_per_min",
    "lookup_burst_per_user",
    "hash_workers",
    "http_header_timeout_s",
    "http_keepalive_s",
    "http_max_concurrency",
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(key: str, raw: str, typ: Any) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if name == "bool":
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true/false")
        if name == "int":
            return int(raw.strip().replace("_", ""))
        if name == "float":
            return float(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{key}: cannot read {raw!r} as {name} ({exc})") from None
    return raw


def _redact_url(url: str) -> str:
    if "," in url:  # the sentinels or a cluster's seed nodes
        return ",".join(_redact_url(part) for part in url.split(","))
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def _with_secret_files(source: Mapping[str, str]) -> Mapping[str, str]:
    """``COLLAB_<KEY>_FILE`` names a file holding ``COLLAB_<KEY>`` (trailing
    newline ignored); the value then goes through the same validation."""
    merged = dict(source)
    for key in SECRET_FILE_KEYS:
        file_key = f"{PREFIX}{key}_FILE"
        path = source.get(file_key)
        if not path:
            continue
        if source.get(PREFIX + key):
            raise SettingsError(f"{file_key}: set either {PREFIX}{key} or {file_key}, not both")
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"{file_key}: cannot read {path!r} ({exc.__class__.__name__})"
            ) from None
        if not value.strip():
            raise SettingsError(f"{file_key}: {path!r} is empty")
        merged[PREFIX + key] = value
    return merged


# --- guessable secrets ---------------------------------------------------------
# A placeholder that works is a credential everyone knows: with the compose
# example unchanged, the example admin password logged in and the example JWT
# key forged admin tokens. So documented examples, anything carrying the
# CHANGE_ME marker, and JWT keys with too little entropy stop the process.
# Any value carrying the placeholder marker is an unedited example.
_PLACEHOLDER = re.compile(r"change[_-]?me", re.IGNORECASE)

# Examples earlier releases documented; refused even if someone drops the marker.
EXAMPLE_SECRETS = frozenset({
    "change-me-jwt-secret-at-least-32-characters-long",
    "change-me-postgres-password",
    "change-me-replication-password",
    "change-me-admin-password",
    "change-me-to-a-random-string-of-at-least-32-chars",
    "change-me",
})  # fmt: skip

# An estimate, not a proof: 48 random hex characters score at least about 160
# bits, 48 random alphanumerics about 215, `openssl rand -hex 16` (32 hex
# characters) about 99 in the worst of 2,000 draws, 110 typically.
MIN_JWT_SECRET_BITS = 96.0
MIN_JWT_SECRET_DISTINCT = 10


def example_secret(value: str) -> bool:
    """True for a documented example or anything carrying the CHANGE_ME marker."""
    return bool(_PLACEHOLDER.search(value)) or value.strip().lower() in EXAMPLE_SECRETS


def estimated_bits(value: str) -> float:
    """Empirical Shannon entropy of the characters times the length. It
    underestimates a truly random key a little and overestimates English
    prose; the repetition check below catches the obvious patterns it misses."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n


def _repeats(value: str) -> bool:
    """True when the value is a shorter string repeated (``abcabcabc``)."""
    n = len(value)
    return any(n % p == 0 and value[:p] * (n // p) == value for p in range(1, n // 2 + 1))


def weak_jwt_secret(value: str) -> str | None:
    """Why ``value`` is unfit as the HMAC key, or None."""
    if example_secret(value):
        return "is a documented example or placeholder; generate a random one"
    if len(set(value)) < MIN_JWT_SECRET_DISTINCT or _repeats(value):
        return "is too repetitive; use e.g. 48 random hex characters (openssl rand -hex 24)"
    bits = estimated_bits(value)
    if bits < MIN_JWT_SECRET_BITS:
        return (
            f"has too little entropy (about {bits:.0f} bits, need {MIN_JWT_SECRET_BITS:.0f}); "
            "use e.g. 48 random hex characters (openssl rand -hex 24)"
        )
    return None


def url_passwords(url: str) -> list[str]:
    """Passwords inside a connection URL (decoded): ``user:password@`` in the
    authority and any ``password=`` query parameter (libpq and redis-py read both)."""
    found: list[str] = []
    if "://" not in url:
        return found
    rest = url.split("://", 1)[1]
    authority, _, tail = rest.partition("/")
    authority, _, query = authority.partition("?")
    query = query or tail.partition("?")[2]
    if "@" in authority:
        creds = authority.rsplit("@", 1)[0]
        if ":" in creds:
            found.append(unquote(creds.split(":", 1)[1]))
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key.lower() == "password" and value:
            found.append(unquote(value))
    return found
