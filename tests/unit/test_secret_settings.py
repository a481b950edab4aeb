"""Known and guessable secrets stop the process; secrets may come from files;
trusted proxies default to loopback only; WebSocket origins parse strictly."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import pytest

from collab.settings import Settings, SettingsError
from tests.conftest import ADMIN_PASSWORD
from tests.support.server import JWT_SECRET

GOOD_JWT = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"  # 48 hex characters
PG = "postgresql://collab:{}@db1:5432,db2:5432/collab?target_session_attrs=read-write"

EXAMPLES = [
    "change-me-jwt-secret-at-least-32-characters-long",
    "change-me-postgres-password",
    "change-me-replication-password",
    "change-me-admin-password",
    "CHANGE_ME_jwt_signing_key_of_32_or_more_characters",
    "prefix-Change_Me-suffix-with-plenty-of-other-characters-0123",
    "change-me-to-a-random-string-of-at-least-32-chars",
]


def _error(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    return str(info.value)


@pytest.mark.parametrize("value", EXAMPLES)
def test_example_jwt_secrets_are_refused(value: str) -> None:
    assert _error({"COLLAB_JWT_SECRET": value}).startswith("COLLAB_JWT_SECRET")


@pytest.mark.parametrize("value", EXAMPLES)
def test_example_passwords_in_urls_and_admin_are_refused(value: str) -> None:
    base = {"COLLAB_JWT_SECRET": GOOD_JWT}
    assert _error({**base, "COLLAB_DATABASE_URL": PG.format(value)}).startswith(
        "COLLAB_DATABASE_URL"
    )
    assert _error({
        **base, "COLLAB_DATABASE_URL": PG.format("fine-pass-1"),
        "COLLAB_DATABASE_READ_URL": PG.format(value),
    }).startswith("COLLAB_DATABASE_READ_URL")  # fmt: skip
    assert _error({**base, "COLLAB_REDIS_URL": f"redis://:{value}@redis:6379/0"}).startswith(
        "COLLAB_REDIS_URL"
    )
    assert _error({**base, "COLLAB_REDIS_URL": f"redis://redis:6379/0?password={value}"})
    assert _error({
        **base, "COLLAB_BOOTSTRAP_ADMIN_USERNAME": "root",
        "COLLAB_BOOTSTRAP_ADMIN_PASSWORD": value,
    }).startswith("COLLAB_BOOTSTRAP_ADMIN_PASSWORD")  # fmt: skip


def test_readme_example_url_password_is_refused() -> None:
    url = PG.format("change-me")
    assert _error({"COLLAB_JWT_SECRET": GOOD_JWT, "COLLAB_DATABASE_URL": url}).startswith(
        "COLLAB_DATABASE_URL"
    )


@pytest.mark.parametrize(
    "value",
    [
        "s" * 40,
        "x" * 64,
        "ab" * 20,
        "0123456789abcdef" * 2,
        "aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd",
        "password" * 5,
    ],
)
def test_low_entropy_jwt_secrets_are_refused(value: str) -> None:
    assert _error({"COLLAB_JWT_SECRET": value}).startswith("COLLAB_JWT_SECRET")


def test_random_secrets_are_accepted() -> None:
    alphanumerics = string.ascii_letters + string.digits
    for _ in range(300):
        Settings.from_env({"COLLAB_JWT_SECRET": secrets.token_hex(24)})
        Settings.from_env(
            {"COLLAB_JWT_SECRET": "".join(secrets.choice(alphanumerics) for _ in range(48))}
        )
        Settings.from_env({"COLLAB_JWT_SECRET": secrets.token_urlsafe(48)})


def test_the_suites_own_secrets_pass() -> None:
    Settings.from_env({
        "COLLAB_JWT_SECRET": JWT_SECRET, "COLLAB_BOOTSTRAP_ADMIN_USERNAME": "root-admin",
        "COLLAB_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COLLAB_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "COLLAB_REDIS_URL": "redis://127.0.0.1:6379/0",
    })  # fmt: skip


def test_embedded_generated_secret_keeps_working(tmp_path: Path) -> None:
    env = {"COLLAB_SQLITE_PATH": str(tmp_path / "db" / "c.db")}
    first = Settings.from_env(env).with_defaults_for_embedded()
    again = Settings.from_env(env).with_defaults_for_embedded()
    assert first.jwt_secret and first.jwt_secret == again.jwt_secret
    Settings.from_env({"COLLAB_JWT_SECRET": first.jwt_secret})  # passes the same checks


def test_secrets_from_files(tmp_path: Path) -> None:
    def put(name: str, value: str) -> str:
        path = tmp_path / name
        path.write_text(value + "\n")
        return str(path)

    settings = Settings.from_env({
        "COLLAB_JWT_SECRET_FILE": put("jwt", GOOD_JWT),
        "COLLAB_DATABASE_URL_FILE": put("db", PG.format("s3cret-db")),
        "COLLAB_DATABASE_READ_URL_FILE": put("dbr", PG.format("s3cret-replica")),
        "COLLAB_REDIS_URL_FILE": put("redis", "redis://:s3cret-redis@redis:6379/0"),
        "COLLAB_BOOTSTRAP_ADMIN_USERNAME": "root",
        "COLLAB_BOOTSTRAP_ADMIN_PASSWORD_FILE": put("admin", "a-long-admin-password"),
    })  # fmt: skip
    assert settings.jwt_secret == GOOD_JWT, "the trailing newline is dropped"
    assert settings.database_url == PG.format("s3cret-db")
    assert settings.database_read_url == PG.format("s3cret-replica")
    assert settings.redis_url == "redis://:s3cret-redis@redis:6379/0"
    assert settings.bootstrap_admin_password == "a-long-admin-password"
    # Same validation as the variable itself, and errors name the key.
    assert _error({"COLLAB_JWT_SECRET_FILE": put("weak", "s" * 40)}).startswith("COLLAB_JWT_SECRET")
    assert _error({
        "COLLAB_JWT_SECRET": GOOD_JWT,
        "COLLAB_DATABASE_URL_FILE": put("ex", PG.format("CHANGE_ME_collab_database_password")),
    }).startswith("COLLAB_DATABASE_URL")  # fmt: skip
    assert _error({"COLLAB_JWT_SECRET_FILE": str(tmp_path / "missing")}).startswith(
        "COLLAB_JWT_SECRET_FILE"
    )
    assert _error({"COLLAB_JWT_SECRET_FILE": put("empty", "")}).startswith("COLLAB_JWT_SECRET_FILE")
    both = {"COLLAB_JWT_SECRET": GOOD_JWT, "COLLAB_JWT_SECRET_FILE": put("jwt2", GOOD_JWT)}
    assert _error(both).startswith("COLLAB_JWT_SECRET_FILE")


def test_trusted_proxies_default_to_loopback_only() -> None:
    networks = {str(n) for n in Settings.from_env({}).proxy_networks()}
    assert networks == {"127.0.0.0/8", "::1/128"}
    spaced = Settings.from_env({"COLLAB_TRUSTED_PROXIES": " 10.244.0.0/16 , fd00::/8,192.0.2.1/32"})
    wanted = {"10.244.0.0/16", "fd00::/8", "192.0.2.1/32"}
    assert {str(n) for n in spaced.proxy_networks()} == wanted
    assert _error({"COLLAB_TRUSTED_PROXIES": "10.0.0.0/8, garbage"}).startswith(
        "COLLAB_TRUSTED_PROXIES"
    )


def test_allowed_origins_are_normalised_and_checked() -> None:
    settings = Settings.from_env(
        {"COLLAB_ALLOWED_ORIGINS": "https://Notes.Example.com:443, http://localhost:5173"}
    )
    assert settings.origins() == {"https://notes.example.com", "http://localhost:5173"}
    for bad in ("notes.example.com", "https://x.example/path", "ftp://x.example", "null"):
        assert _error({"COLLAB_ALLOWED_ORIGINS": bad}).startswith("COLLAB_ALLOWED_ORIGINS")


def test_metrics_port_is_checked() -> None:
    assert Settings.from_env({"COLLAB_METRICS_PORT": "9100"}).metrics_port == 9100
    assert _error({"COLLAB_METRICS_PORT": "8000"}).startswith("COLLAB_METRICS_PORT")
    assert _error({"COLLAB_METRICS_PORT": "9100", "COLLAB_WORKERS": "2"}).startswith(
        "COLLAB_METRICS_PORT"
    )
