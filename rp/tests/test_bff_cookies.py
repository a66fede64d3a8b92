"""The BFF kit's pure parts: cookie sealing, the return_to rule, its configuration checks."""

from __future__ import annotations

import secrets

import pytest

from idp_rp.bff.app import is_local_path, pkce_s256
from idp_rp.bff.config import BffConfig, BffConfigError
from idp_rp.bff.provider import IdTokenError, TokenAnswer, check_refreshed
from idp_rp.bff.sealing import Sealer
from idp_rp.bff.sessions import Session


def test_a_sealed_cookie_opens_only_under_its_own_name_and_key() -> None:
    key = secrets.token_bytes(32)
    sealed = Sealer(key).seal("bff_refresh", {"rt": "secret-token"})
    assert "secret-token" not in sealed
    assert Sealer(key).unseal("bff_refresh", sealed) == {"rt": "secret-token"}
    assert Sealer(key).unseal("bff_session", sealed) is None  # swapped into another cookie
    assert Sealer(secrets.token_bytes(32)).unseal("bff_refresh", sealed) is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_an_altered_sealed_cookie_is_refused_not_an_error(damage: str) -> None:
    sealer = Sealer(secrets.token_bytes(32))
    sealed = sealer.seal("c", {"a": 1})
    altered = {
        "flip": sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:],
        "truncate": sealed[:10],
        "garbage": "%%%not base64!",
        "empty": "",
    }[damage]
    assert sealer.unseal("c", altered) is None


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("/", True),
        ("/reports?year=2026#top", True),
        ("//evil.example/", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        ("/a\nLocation: x", False),
        ("relative", False),
    ],
    ids=["root", "path-query", "scheme-relative", "backslash", "absolute", "js", "crlf", "rel"],
)
def test_return_to_is_a_path_on_this_site(target: str, local: bool) -> None:
    assert is_local_path(target) is local


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def config(**changes: object) -> BffConfig:
    values: dict[str, object] = {
        "issuer": "https://idp.example",
        "client_id": "app",
        "client_secret": "s",
        "base_url": "https://app.example",
        "cookie_key": bytes(32),
        **changes,
    }
    return BffConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"cookie_key": b"short"},
        {"issuer": "idp.example"},
        {"base_url": "ftp://app.example"},
        {"algorithms": ("HS256",)},
        {"api_prefix": "/api/"},
    ],
    ids=["short-key", "issuer-not-url", "base-not-http", "hs256", "prefix-slash"],
)
def test_a_bad_configuration_is_a_clear_error(changes: dict[str, object]) -> None:
    with pytest.raises(BffConfigError):
        config(**changes)


def test_the_redirect_uri_and_cookie_prefix_follow_the_base_url() -> None:
    assert config().redirect_uri == "https://app.example/auth/callback"
    assert config().https
    assert not config(base_url="http://127.0.0.1:8000").https


def test_no_secret_or_token_shows_in_a_repr() -> None:
    """A config, a session or a token answer in a log line or a traceback (which prints
    reprs) shows neither the client secret, the cookie key, nor any token."""
    secret_config = config(client_secret="client-secret-value", cookie_key=b"K" * 32)
    session = Session.new("access-value", 1.0, "refresh-value", "id-token-value")
    answer = TokenAnswer("access-value", 1.0, "refresh-value", "id-token-value")
    shown = repr(secret_config) + repr(session) + repr(answer)
    for value in ("client-secret-value", "KKKK", "access-value", "refresh-value", "id-token"):
        assert value not in shown
    assert session.id not in shown
    assert session.xsrf not in shown
    assert "https://idp.example" in shown  # what helps an operator stays


ORIGINAL = {
    "iss": "https://idp.example",
    "sub": "u1",
    "aud": ["app", "api"],
    "azp": "app",
    "auth_time": 1000,
    "iat": 1000,
}


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "u2"},
        {"iss": "https://other.example"},
        {"aud": ["app"]},
        {"azp": "api"},
        {"auth_time": 2000},
    ],
    ids=["sub", "iss", "aud", "azp", "auth_time"],
)
def test_a_refreshed_id_token_keeps_the_original_claims(changes: dict[str, object]) -> None:
    """OIDC Core §12.2: iss, sub, aud, azp and auth_time are those of the original."""
    check_refreshed(ORIGINAL, {**ORIGINAL, "iat": 2000})  # a new iat is the point
    with pytest.raises(IdTokenError):
        check_refreshed(ORIGINAL, {**ORIGINAL, "iat": 2000, **changes})


def test_a_refreshed_id_token_adds_no_azp_the_original_lacked() -> None:
    original = {key: value for key, value in ORIGINAL.items() if key != "azp"}
    check_refreshed(original, {**original, "auth_time": 1000})
    with pytest.raises(IdTokenError):
        check_refreshed(original, {**original, "azp": "app"})
