"""Settings.from_env: DESIGN.md's defaults, the duration syntax, and a bad value stopping start-up
with one line naming the variable."""

from __future__ import annotations

import secrets
import sys
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest

from idp.keys.crypto import b64url
from idp.settings import Settings, SettingsError
from tests.factories import Completed, environ_without_idp, run_command

# Every duration variable, with the field it sets and a valid value that differs from the default.
DURATION_VARIABLES = [
    ("IDP_KEY_ROTATION_INTERVAL", "key_rotation_interval", "7d", timedelta(days=7)),
    ("IDP_KEY_PREPUBLISH", "key_prepublish", "2d", timedelta(days=2)),
    ("IDP_KEY_CHECK_INTERVAL", "key_check_interval", "15m", timedelta(minutes=15)),
    ("IDP_JWKS_MAX_AGE", "jwks_max_age", "90s", timedelta(seconds=90)),
    ("IDP_CLOCK_SKEW", "clock_skew", "90", timedelta(seconds=90)),
    ("IDP_ACCESS_TOKEN_TTL", "access_token_ttl", "15m", timedelta(minutes=15)),
    ("IDP_AUTH_CODE_TTL", "auth_code_ttl", "90s", timedelta(seconds=90)),
    ("IDP_SESSION_TTL", "session_ttl", "24h", timedelta(hours=24)),
    ("IDP_REFRESH_TOKEN_TTL", "refresh_token_ttl", "60d", timedelta(days=60)),
    ("IDP_REFRESH_IDLE_TTL", "refresh_idle_ttl", "7d", timedelta(days=7)),
    ("IDP_REFRESH_REUSE_GRACE", "refresh_reuse_grace", "90s", timedelta(seconds=90)),
    ("IDP_HEAD_TIMEOUT", "head_timeout", "30s", timedelta(seconds=30)),
]


# -- defaults -------------------------------------------------------------------------------
def test_from_empty_environment_gives_every_documented_default() -> None:
    settings = Settings.from_env({})

    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.database_url is None
    assert settings.data_dir == Path(".idp")
    assert settings.key_encryption_key is None
    assert settings.signing_alg == "RS256"
    assert settings.key_rotation_interval == timedelta(days=30)
    assert settings.key_prepublish == timedelta(days=1)
    assert settings.key_check_interval == timedelta(seconds=60)
    assert settings.jwks_max_age == timedelta(minutes=5)
    assert settings.clock_skew == timedelta(seconds=60)
    assert settings.access_token_ttl == timedelta(minutes=10)
    assert settings.auth_code_ttl == timedelta(seconds=60)
    assert settings.session_ttl == timedelta(hours=12)
    assert settings.refresh_token_ttl == timedelta(days=30)
    assert settings.refresh_idle_ttl == timedelta(days=14)
    assert settings.refresh_reuse_grace == timedelta(0)
    assert settings.trusted_proxies == ()
    assert settings.head_timeout == timedelta(seconds=10)
    assert settings.smtp_url is None
    assert settings.sender == "idp@127.0.0.1"
    assert settings.registration == "closed"
    assert settings.password_min_length == 12
    assert settings.templates_dir is None


def test_demo_opens_sign_up_unless_registration_is_set() -> None:
    assert Settings.from_env({}, demo=True).registration == "open"
    assert Settings.from_env({"IDP_REGISTRATION": "closed"}, demo=True).registration == "closed"
    assert Settings.from_env({"IDP_REGISTRATION": "open"}).registration == "open"


def test_account_variables_set_their_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "IDP_ISSUER": "https://login.example.com",
            "IDP_SMTP_URL": "smtps://mailer:s%40cret@mail.example.com:2465",
            "IDP_MAIL_FROM": "accounts@example.com",
            "IDP_PASSWORD_MIN_LENGTH": "15",
            "IDP_TEMPLATES_DIR": str(tmp_path),
        }
    )
    assert settings.smtp_url == "smtps://mailer:s%40cret@mail.example.com:2465"
    assert settings.sender == "accounts@example.com"
    assert settings.password_min_length == 15
    assert settings.templates_dir == tmp_path
    assert "s%40cret" not in repr(settings)  # the SMTP password is a secret
    assert Settings.from_env({"IDP_ISSUER": "https://login.example.com"}).sender == (
        "idp@login.example.com"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDP_SMTP_URL", "http://mail.example.com"),
        ("IDP_SMTP_URL", "smtp://"),
        ("IDP_SMTP_URL", "smtp://user:hunter2@mail.example.com:port"),
        ("IDP_SMTP_URL", "smtp://user:hunter2@mail.example.com?tls=maybe"),
        ("IDP_SMTP_URL", "smtps://user:hunter2@mail.example.com?tls=require"),
        ("IDP_REGISTRATION", "sometimes"),
        ("IDP_PASSWORD_MIN_LENGTH", "7"),
        ("IDP_PASSWORD_MIN_LENGTH", "65"),
        ("IDP_PASSWORD_MIN_LENGTH", "twelve"),
        ("IDP_MAIL_FROM", "not an address"),
        ("IDP_TEMPLATES_DIR", "/no/such/directory"),
    ],
)
def test_a_bad_account_setting_names_its_variable_and_never_the_smtp_password(
    variable: str, value: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert "hunter2" not in str(raised.value)


def test_default_issuer_is_the_serve_host_and_port() -> None:
    assert (
        Settings.from_env({}, host="idp.internal", port=9000).issuer == "http://idp.internal:9000"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])  # noqa: S104
def test_serving_on_every_interface_needs_an_explicit_issuer(host: str) -> None:
    with pytest.raises(SettingsError, match="IDP_ISSUER"):
        Settings.from_env({}, host=host, port=8000)
    given = Settings.from_env({"IDP_ISSUER": "https://login.example"}, host=host, port=8000)
    assert given.issuer == "https://login.example"


def test_empty_variables_count_as_unset() -> None:
    environ = {name: "" for name, *_ in DURATION_VARIABLES}
    for name in ("IDP_ISSUER", "IDP_DATABASE_URL", "IDP_DATA_DIR", "IDP_KEY_ENCRYPTION_KEY"):
        environ[name] = ""
    environ["IDP_SIGNING_ALG"] = ""
    environ["IDP_TRUSTED_PROXIES"] = ""

    assert Settings.from_env(environ) == Settings.from_env({})


def test_variables_override_the_defaults() -> None:
    kek = secrets.token_bytes(32)
    settings = Settings.from_env(
        {
            "IDP_ISSUER": "https://login.example.com",
            "IDP_DATABASE_URL": "postgresql://idp@db.example.com/idp",
            "IDP_DATA_DIR": "/var/lib/idp",
            "IDP_KEY_ENCRYPTION_KEY": b64url(kek),
            "IDP_SIGNING_ALG": "ES256",
        }
    )

    assert settings.issuer == "https://login.example.com"
    assert settings.database_url == "postgresql://idp@db.example.com/idp"
    assert settings.data_dir == Path("/var/lib/idp")
    assert settings.key_encryption_key == kek
    assert settings.signing_alg == "ES256"


# -- durations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_duration_syntax(text: str, expected: timedelta) -> None:
    assert Settings.from_env({"IDP_SESSION_TTL": text}).session_ttl == expected


@pytest.mark.parametrize(("variable", "field", "text", "expected"), DURATION_VARIABLES)
def test_each_duration_variable_sets_its_setting(
    variable: str, field: str, text: str, expected: timedelta
) -> None:
    assert getattr(Settings.from_env({variable: text}), field) == expected


@pytest.mark.parametrize("text", ["soon", "1.5h", "15 minutes", "-5s", "15M", "1w", "m"])
def test_bad_duration_raises_settings_error_naming_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^IDP_SESSION_TTL: ") as caught:
        Settings.from_env({"IDP_SESSION_TTL": text})

    assert caught.value.variable == "IDP_SESSION_TTL"


@pytest.mark.parametrize("variable", [name for name, *_ in DURATION_VARIABLES])
def test_every_duration_variable_is_validated(variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: ") as caught:
        Settings.from_env({variable: "soon"})

    assert caught.value.variable == variable


def test_a_head_timeout_of_zero_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^IDP_HEAD_TIMEOUT: must be longer than 0s"):
        Settings.from_env({"IDP_HEAD_TIMEOUT": "0s"})


# -- trusted proxies ------------------------------------------------------------------------
def test_trusted_proxies_are_addresses_and_networks_separated_by_commas() -> None:
    settings = Settings.from_env({"IDP_TRUSTED_PROXIES": " 10.0.0.7, 10.1.0.0/16,::1 ,"})

    assert settings.trusted_proxies == (
        ip_network("10.0.0.7/32"),
        ip_network("10.1.0.0/16"),
        ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*", "every client"),
        ("caddy", "not an IP address or network"),
        ("10.0.0.0/33", "not an IP address or network"),
        ("10.0.0.7/16", "has host bits set"),
        ("10.0.0.7 10.0.0.8", "not an IP address or network"),
    ],
)
def test_a_bad_trusted_proxy_raises_settings_error_naming_the_variable(
    text: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=r"^IDP_TRUSTED_PROXIES: ") as caught:
        Settings.from_env({"IDP_TRUSTED_PROXIES": text})

    assert reason in str(caught.value)


# -- algorithms and the key-encryption key --------------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_documented_signing_algorithms_are_accepted(alg: str) -> None:
    assert Settings.from_env({"IDP_SIGNING_ALG": alg}).signing_alg == alg


@pytest.mark.parametrize("alg", ["HS256", "none", "rs256", "RS512"])
def test_unknown_signing_alg_raises_settings_error_naming_the_variable(alg: str) -> None:
    with pytest.raises(SettingsError, match=r"^IDP_SIGNING_ALG: ") as caught:
        Settings.from_env({"IDP_SIGNING_ALG": alg})

    assert caught.value.variable == "IDP_SIGNING_ALG"


def test_key_encryption_key_is_decoded_with_or_without_padding() -> None:
    kek = secrets.token_bytes(32)
    unpadded = b64url(kek)

    assert Settings.from_env({"IDP_KEY_ENCRYPTION_KEY": unpadded}).key_encryption_key == kek
    assert Settings.from_env({"IDP_KEY_ENCRYPTION_KEY": unpadded + "="}).key_encryption_key == kek


@pytest.mark.parametrize(
    "text",
    ["not a key", b64url(secrets.token_bytes(16)), b64url(secrets.token_bytes(33)), "%%%%"],
    ids=["not-a-key", "16-bytes", "33-bytes", "not-base64url"],  # the same in every xdist worker
)
def test_bad_key_encryption_key_raises_settings_error_naming_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^IDP_KEY_ENCRYPTION_KEY: ") as caught:
        Settings.from_env({"IDP_KEY_ENCRYPTION_KEY": text})

    assert caught.value.variable == "IDP_KEY_ENCRYPTION_KEY"


# -- the prepublish rule --------------------------------------------------------------------
@pytest.mark.parametrize(
    "environ",
    [
        {"IDP_KEY_PREPUBLISH": "1m"},
        # the defaults' IDP_JWKS_MAX_AGE + IDP_CLOCK_SKEW + IDP_KEY_CHECK_INTERVAL is 420s
        {"IDP_KEY_PREPUBLISH": "419"},
        # the clock skew counts too: 24h + 60s outlasts the default 1d
        {"IDP_JWKS_MAX_AGE": "24h"},
        {"IDP_KEY_PREPUBLISH": "10m", "IDP_JWKS_MAX_AGE": "5m", "IDP_CLOCK_SKEW": "6m"},
        # and so does the check interval (a process that missed a NOTIFY reloads that late)
        {"IDP_KEY_PREPUBLISH": "10m", "IDP_KEY_CHECK_INTERVAL": "6m"},
    ],
)
def test_prepublish_shorter_than_max_age_skew_and_check_interval_raises_settings_error(
    environ: dict[str, str],
) -> None:
    with pytest.raises(SettingsError, match=r"^IDP_KEY_PREPUBLISH: ") as caught:
        Settings.from_env(environ)

    assert caught.value.variable == "IDP_KEY_PREPUBLISH"


def test_prepublish_equal_to_max_age_skew_and_check_interval_is_accepted() -> None:
    settings = Settings.from_env({"IDP_KEY_PREPUBLISH": "420"})

    assert settings.key_prepublish == (
        settings.jwks_max_age + settings.clock_skew + settings.key_check_interval
    )


# -- start-up refuses a bad setting (the CLI as a subprocess) -------------------------------
async def run_idp(args: list[str], environ: dict[str, str], cwd: Path) -> Completed:
    """``python -m idp ARGS`` with only ``environ``'s IDP_* variables, bounded by a timeout."""
    env = environ_without_idp() | environ
    return await run_command([sys.executable, "-m", "idp", *args], env, cwd=cwd)


def assert_refused(result: Completed, variable: str) -> None:
    """Exit 1, one line on stderr naming ``variable``, nothing on stdout, no traceback."""
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("IDP_SIGNING_ALG", "HS256"), ("IDP_KEY_PREPUBLISH", "1m"), ("IDP_SESSION_TTL", "soon")],
)
async def test_migrate_with_a_bad_setting_exits_1_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    data_dir = tmp_path / "idp-data"

    result = await run_idp(
        ["migrate"], {variable: value, "IDP_DATA_DIR": str(data_dir)}, cwd=tmp_path
    )

    assert_refused(result, variable)
    assert not data_dir.exists()  # refused before the embedded database was started


async def test_external_database_without_key_encryption_key_exits_1_naming_it(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 1: the check must come before any connection attempt.
    result = await run_idp(
        ["migrate"], {"IDP_DATABASE_URL": "postgresql://idp@127.0.0.1:1/idp"}, cwd=tmp_path
    )

    assert_refused(result, "IDP_KEY_ENCRYPTION_KEY")
    assert "IDP_DATABASE_URL" in result.stderr  # says why it is required


def test_idp_mfa_is_optional_by_default_required_when_set_and_a_bad_value_stops_start_up() -> None:
    assert Settings.from_env({}).mfa == "optional"
    assert Settings.from_env({"IDP_MFA": "required"}).mfa == "required"
    with pytest.raises(SettingsError, match=r"^IDP_MFA: 'always' is not one of optional"):
        Settings.from_env({"IDP_MFA": "always"})


def test_metadata_document_fetch_bounds_default_and_are_read() -> None:
    defaults = Settings.from_env({})
    assert (defaults.cimd_fetches_per_minute, defaults.cimd_concurrent_fetches) == (10, 8)
    chosen = Settings.from_env(
        {"IDP_CIMD_FETCHES_PER_MINUTE": "30", "IDP_CIMD_CONCURRENT_FETCHES": "2"}
    )
    assert (chosen.cimd_fetches_per_minute, chosen.cimd_concurrent_fetches) == (30, 2)


@pytest.mark.parametrize("variable", ["IDP_CIMD_FETCHES_PER_MINUTE", "IDP_CIMD_CONCURRENT_FETCHES"])
@pytest.mark.parametrize("text", ["0", "-1", "many", "2.5"])
def test_bad_metadata_document_fetch_bound_names_the_variable(variable: str, text: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: ") as caught:
        Settings.from_env({variable: text})
    assert caught.value.variable == variable
