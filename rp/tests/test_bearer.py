"""Reading Bearer credentials (RFC 6750 §2.1), the challenges (§3, RFC 9728 §5.1) and the
scope/role requirement, without a web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import METADATA
from idp_rp.bearer import (
    Challenge,
    InsufficientScopeError,
    InvalidRequestError,
    MissingRoleError,
    MissingTokenError,
    Requirement,
    TokenRefusedError,
    bearer_token,
)
from idp_rp.verifier import VerifiedToken


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([], None),
        (["Bearer abc.DEF-_~+/="], "abc.DEF-_~+/="),
        (["bearer abc"], "abc"),
        (["BEARER   abc  "], "abc"),
        (["Basic dXNlcjpwYXNz"], None),
    ],
    ids=["none", "b64token", "lowercase-scheme", "uppercase-and-spaces", "other-scheme"],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    headers: list[str], token: str | None
) -> None:
    """RFC 6750 §2.1; the scheme is case-insensitive (RFC 9110 §11.1); another scheme is no
    Bearer token at all."""
    assert bearer_token(headers) == token


@pytest.mark.parametrize(
    "headers",
    [
        ["Bearer a", "Bearer b"],
        ["Bearer a, Bearer b"],
        ["Bearer a b"],
        ["Bearer"],
        ["Bearer "],
        ['Bearer "quoted"'],
        ["Bearer =abc"],
    ],
    ids=[
        "two-headers",
        "two-credentials",
        "two-words",
        "no-token",
        "blank",
        "quoted",
        "padding-first",
    ],
)
def test_two_credentials_or_a_malformed_header_is_invalid_request(headers: list[str]) -> None:
    """RFC 6750 §3.1 ``invalid_request``: malformed, or more than one credential: a 400; §3: it
    holds no access token that enables access, so the challenge MUST go with it."""
    with pytest.raises(InvalidRequestError) as raised:
        bearer_token(headers)
    assert (raised.value.status, raised.value.error) == (400, "invalid_request")
    assert raised.value.headers(Challenge(resource_metadata=METADATA))["WWW-Authenticate"] == (
        f'Bearer error="invalid_request", error_description="{raised.value.description}", '
        f'resource_metadata="{METADATA}"'
    )


def test_no_token_challenge_has_no_error_attributes() -> None:
    """RFC 6750 §3.1: "If the request lacks any authentication information ... the resource
    server SHOULD NOT include an error code or other error information"."""
    error = MissingTokenError()
    assert error.status == 401
    assert error.challenge(Challenge("api", METADATA)) == (
        f'Bearer realm="api", resource_metadata="{METADATA}"'
    )
    assert error.challenge() == "Bearer"
    assert error.body()["error"] == "unauthorized"


def test_invalid_token_challenge_names_the_error_and_its_description() -> None:
    """RFC 6750 §3 example, plus RFC 9728 §5.1 ``resource_metadata``."""
    error = TokenRefusedError("the token has expired")
    assert error.challenge(Challenge("api", METADATA)) == (
        'Bearer realm="api", error="invalid_token", error_description="the token has expired", '
        f'resource_metadata="{METADATA}"'
    )
    assert error.body() == {"error": "invalid_token", "error_description": "the token has expired"}


def test_a_description_cannot_break_out_of_its_quoted_string() -> None:
    """RFC 6750 §3: error_description holds %x20-21 / %x23-5B / %x5D-7E only; a kid echoed
    from an attacker's token must not inject a parameter or a header line."""
    error = TokenRefusedError("no key 'x\", error=\"none\r\nSet-Cookie: a=b\\'")
    challenge = error.challenge()
    assert challenge.count('"') == 4  # error="..." and error_description="..." only
    assert not {"\r", "\n", "\\"} & set(challenge)


def token(scope: str | None = "read write", roles: list[str] | None = None) -> VerifiedToken:
    claims: dict[str, object] = {"sub": "u", "client_id": "c"}
    if scope is not None:
        claims["scope"] = scope
    if roles is not None:
        claims["roles"] = roles
    return VerifiedToken(claims)


def test_a_requirement_met_returns_the_token() -> None:
    verified = token(roles=["admin", "staff"])
    assert Requirement.of(["read"], ["admin"]).check(verified) is verified
    assert Requirement.of().check(token(scope=None)) is not None


def test_a_missing_scope_is_insufficient_scope_naming_every_scope_needed() -> None:
    """RFC 6750 §3.1: 403 ``insufficient_scope``, ``scope`` the scope necessary."""
    with pytest.raises(InsufficientScopeError) as raised:
        Requirement.of(["read", "admin:write"]).check(token())
    assert raised.value.status == 403
    assert raised.value.challenge() == (
        'Bearer error="insufficient_scope", error_description="the token lacks the scope '
        'admin:write", scope="admin:write read"'
    )


def test_a_missing_role_is_403_insufficient_scope_without_a_scope_to_ask_for() -> None:
    with pytest.raises(MissingRoleError) as raised:
        Requirement.of(["read"], ["admin"]).check(token(roles=["staff"]))
    assert (raised.value.status, raised.value.error) == (403, "insufficient_scope")
    assert "scope=" not in raised.value.challenge()
    assert raised.value.body()["error_description"] == "the user lacks the role admin"


def test_a_string_for_a_list_of_scopes_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="lists of names"):
        Requirement.of("admin")


def test_the_framework_free_modules_import_without_starlette_or_fastapi() -> None:
    """A resource server on another framework installs idp-rp bare (no extras)."""
    code = (
        "import sys; sys.modules['starlette'] = sys.modules['fastapi'] = None\n"
        "import idp_rp.bearer, idp_rp.introspection, idp_rp.protected_resource\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
