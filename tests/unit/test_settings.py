"""Settings are read from COLLAB_* and validated with errors naming the key."""

from __future__ import annotations

import pytest

from collab.settings import Settings, SettingsError

# A key with the entropy the settings demand (a repeated character is refused).
TEST_KEY = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"


def test_defaults_are_valid_embedded() -> None:
    s = Settings.from_env({})
    assert s.embedded and not s.distributed_leases
    assert s.lease_ttl_ms == 3 * s.heartbeat_ms and s.max_frame_bytes == 65536


def test_coercion() -> None:
    s = Settings.from_env(
        {"COLLAB_PORT": "9000", "COLLAB_ALLOW_GUEST": "off", "COLLAB_GRACEFUL_SHUTDOWN_S": "2.5"}
    )
    assert (s.port, s.allow_guest, s.graceful_shutdown_s) == (9000, False, 2.5)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"COLLAB_PORT": "eighty"}, "COLLAB_PORT"),
        ({"COLLAB_PORT": "0"}, "COLLAB_PORT"),
        ({"COLLAB_ALLOW_SIGNUP": "maybe"}, "COLLAB_ALLOW_SIGNUP"),
        ({"COLLAB_LEASE_TTL_MS": "1000"}, "COLLAB_LEASE_TTL_MS"),
        ({"COLLAB_DATABASE_URL": "postgresql://x/db"}, "COLLAB_JWT_SECRET"),
        ({"COLLAB_JWT_SECRET": "short"}, "COLLAB_JWT_SECRET"),
        ({"COLLAB_JWT_ALGORITHM": "none"}, "COLLAB_JWT_ALGORITHM"),
        (
            {"COLLAB_DATABASE_URL": "mysql://x", "COLLAB_JWT_SECRET": TEST_KEY},
            "COLLAB_DATABASE_URL",
        ),
        ({"COLLAB_BOOTSTRAP_ADMIN_USERNAME": "root"}, "COLLAB_BOOTSTRAP_ADMIN_PASSWORD"),
        ({"COLLAB_EDIT_RATE_PER_S": "0"}, "COLLAB_EDIT_RATE_PER_S"),
        ({"COLLAB_TRUSTED_PROXIES": "10.0.0.0/33"}, "COLLAB_TRUSTED_PROXIES"),
    ],
)
def test_errors_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(key)


def test_redacted_hides_secrets() -> None:
    s = Settings.from_env(
        {"COLLAB_JWT_SECRET": TEST_KEY, "COLLAB_DATABASE_URL": "postgresql://app:hunter2@db:5432/x"}
    )
    shown = s.redacted()
    assert shown["jwt_secret"] == "***" and "hunter2" not in str(shown)
