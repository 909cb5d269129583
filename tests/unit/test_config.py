"""Settings read from the environment (pure: the environment is a plain mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core.config import DEFAULT_MAX_BODY_BYTES, ConfigError, Settings, parse_secrets

SECRET = "s3cr3t-current-0123456789"
ROTATED = "s3cr3t-previous-9876543210"
DB_PASSWORD = "pg-Pa55w0rd-zq8"
DATABASE_URL = f"postgresql://ingest:{DB_PASSWORD}@db.internal:5432/mightycall"


def test_no_secret_in_the_environment_gives_no_secrets() -> None:
    settings = Settings.from_env({})
    assert settings.webhook_secrets == ()
    assert settings.database_url is None
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    assert settings.var_dir == Path("var")


@pytest.mark.parametrize("raw", ["", "   ", ",", " , ,, "])
def test_blank_secret_gives_no_secrets(raw: str) -> None:
    assert Settings.from_env({"MIGHTYCALL_WEBHOOK_SECRET": raw}).webhook_secrets == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(SECRET, (SECRET,), id="one"),
        pytest.param(f"{SECRET},{ROTATED}", (SECRET, ROTATED), id="two"),
        pytest.param(f"  {SECRET} ,\t{ROTATED}  ", (SECRET, ROTATED), id="whitespace-trimmed"),
        pytest.param(f",{SECRET},, ,{ROTATED},", (SECRET, ROTATED), id="empties-dropped"),
        pytest.param(f"{ROTATED},{SECRET}", (ROTATED, SECRET), id="order-kept"),
    ],
)
def test_secrets_are_comma_separated(raw: str, expected: tuple[str, ...]) -> None:
    assert parse_secrets(raw) == expected
    assert Settings.from_env({"MIGHTYCALL_WEBHOOK_SECRET": raw}).webhook_secrets == expected


def test_parse_secrets_of_none_is_empty() -> None:
    assert parse_secrets(None) == ()


@pytest.mark.parametrize(
    "raw",
    ["your-secret-key", " your-secret-key ", f"{SECRET},your-secret-key", f"your-secret-key , {SECRET}"],
)
def test_published_example_secret_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="your-secret-key"):
        parse_secrets(raw)
    with pytest.raises(ConfigError):
        Settings.from_env({"MIGHTYCALL_WEBHOOK_SECRET": raw})


@pytest.mark.parametrize(("raw", "expected"), [("2048", 2048), (" 4096 ", 4096), ("1", 1), ("", None)])
def test_max_body_bytes_is_parsed(raw: str, expected: int | None) -> None:
    settings = Settings.from_env({"MIGHTYCALL_MAX_BODY_BYTES": raw})
    assert settings.max_body_bytes == (DEFAULT_MAX_BODY_BYTES if expected is None else expected)


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "1.5", "1MB", "1e6"])
def test_bad_max_body_bytes_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="MIGHTYCALL_MAX_BODY_BYTES"):
        Settings.from_env({"MIGHTYCALL_MAX_BODY_BYTES": raw})


def test_other_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": DATABASE_URL,
            "MIGHTYCALL_SERVICE_ROLE": "ingest_service",
            "MIGHTYCALL_VAR_DIR": "/srv/mightycall/var",
        }
    )
    assert settings.database_url == DATABASE_URL
    assert settings.service_role == "ingest_service"
    assert settings.var_dir == Path("/srv/mightycall/var")


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(
            {"MIGHTYCALL_WEBHOOK_SECRET": f"{SECRET},{ROTATED}", "DATABASE_URL": DATABASE_URL}, id="both"
        ),
        pytest.param({"MIGHTYCALL_WEBHOOK_SECRET": SECRET}, id="secret-only"),
        pytest.param({"DATABASE_URL": DATABASE_URL}, id="url-only"),
    ],
)
def test_repr_hides_secrets_and_database_password(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    assert settings.webhook_secrets or settings.database_url
    for text in (repr(settings), str(settings), f"{settings!r}", repr([settings])):
        assert SECRET not in text
        assert ROTATED not in text
        assert DB_PASSWORD not in text
        assert text.startswith("Settings(") or text.startswith("[Settings(")
