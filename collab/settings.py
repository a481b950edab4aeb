"""One typed settings object, read from ``COLLAB_*`` environment variables.

Every limit the server enforces is a field here, so operators can find and tune
all of them in one place (docs/operations.md lists them). ``Settings.from_env``
validates everything at start-up and raises ``SettingsError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    trusted_proxies: str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"

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
    bus_ping_interval_s: float = 1.0
    bus_ping_timeout_s: float = 1.0
    bus_reconnect_min_s: float = 0.05
    bus_reconnect_max_s: float = 5.0
    db_pool_min: int = 1
    db_pool_max: int = 10
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

    # --- write token -------------------------------------------------------
    heartbeat_ms: int = 5000
    lease_ttl_ms: int = 15000
    lock_delay_ms: int = 2000
    reconcile_interval_s: float = 5.0

    # --- limits --------------------------------------------------------------
    max_frame_bytes: int = 65536
    max_note_chars: int = 1_000_000
    max_title_chars: int = 200
    max_changes_per_edit: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    hello_timeout_s: float = 10.0
    outbound_queue_max: int = 1024
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
        source = os.environ if env is None else env
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
        path.parent.mkdir(parents=True, exist_ok=True)
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
        need(self.max_frame_bytes >= 1024, "max_frame_bytes", "must be at least 1024")
        need(self.max_note_chars >= 1, "max_note_chars", "must be positive")
        need(self.outbound_queue_max >= 8, "outbound_queue_max", "must be at least 8")
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
        need(self.log_level in _LOG_LEVELS, "log_level", f"one of {sorted(_LOG_LEVELS)}")
        try:
            self.proxy_networks()
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}TRUSTED_PROXIES: {exc}") from None
        for name in _POSITIVE:
            need(getattr(self, name) > 0, name, "must be positive")

    def proxy_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(
            ipaddress.ip_network(part.strip())
            for part in self.trusted_proxies.split(",")
            if part.strip()
        )

    @property
    def lease_ttl_s(self) -> float:
        return self.lease_ttl_ms / 1000.0


_SECRET_FIELDS = {"jwt_secret", "bootstrap_admin_password"}
_ALGORITHMS = {"HS256", "HS384", "HS512"}
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
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
