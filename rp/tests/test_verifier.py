"""TokenVerifier's checks (RFC 9068 §4, RFC 8725 §3.1, RFC 7519 §4.1) with keys made here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from conftest import AUDIENCE, ISSUER, FrozenClock, claims_at, mint, new_key, public
from idp_rp import InvalidTokenError, TokenVerifier
from jwks_server import JwksServer


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: HMAC-SHA256 over it with ``secret``, or no signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


async def test_a_valid_access_token_is_accepted_and_exposes_its_claims(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    token = mint(
        key,
        claims_at(clock, roles=["admin", "staff"], acr="urn:idp:mfa", auth_time=1_700_000_000),
        typ="application/AT+JWT",  # RFC 9068 §4 with the prefix; media types ignore case
    )
    verified = await verifier.verify(token)
    assert (verified.subject, verified.client_id, verified.acr) == ("user-1", "app", "urn:idp:mfa")
    assert verified.scopes == {"read", "write"}
    assert verified.roles == {"admin", "staff"}
    assert verified.auth_time == datetime.fromtimestamp(1_700_000_000, UTC)


async def test_a_tampered_payload_fails_the_signature(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    header, _, signature = mint(key, claims_at(clock)).split(".")
    tampered = b64(json.dumps(claims_at(clock, sub="admin")).encode())
    with pytest.raises(InvalidTokenError, match="bad signature"):
        await verifier.verify(f"{header}.{tampered}.{signature}")


async def test_a_token_signed_by_an_unpublished_key_with_a_published_kid_is_refused(
    verifier: TokenVerifier, clock: FrozenClock
) -> None:
    impostor = new_key("k1")
    with pytest.raises(InvalidTokenError, match="bad signature"):
        await verifier.verify(mint(impostor, claims_at(clock)))


async def test_alg_none_is_refused(verifier: TokenVerifier, clock: FrozenClock) -> None:
    """RFC 8725 §3.1 / RFC 7518 §3.6: an unsecured JWS is never an access token."""
    token = forged({"alg": "none", "kid": "k1", "typ": "at+jwt"}, claims_at(clock), None)
    with pytest.raises(InvalidTokenError, match="algorithm 'none'"):
        await verifier.verify(token)


async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 8725 §2.1: the algorithm-confusion attack, the published key as an HMAC secret."""
    pem = key.as_pem(private=False)
    token = forged({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}, claims_at(clock), pem)
    with pytest.raises(InvalidTokenError, match="algorithm 'HS256'"):
        await verifier.verify(token)


async def test_an_algorithm_outside_the_pinned_list_is_refused_even_with_a_good_signature(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    unpinned = RSAKey.import_key(
        {name: value for name, value in key.as_dict(private=True).items() if name != "alg"}
    )
    token = mint(unpinned, claims_at(clock), alg="PS256", kid="k1")
    with pytest.raises(InvalidTokenError, match="algorithm 'PS256'"):
        await verifier.verify(token)


@pytest.mark.parametrize("typ", ["JWT", "id_token+jwt", None])
async def test_a_token_not_typed_at_jwt_is_refused(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock, typ: str | None
) -> None:
    """RFC 9068 §4: an ID token (typ JWT, or none) presented as an access token."""
    with pytest.raises(InvalidTokenError, match="not an access token"):
        await verifier.verify(mint(key, claims_at(clock), typ=typ))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": "https://other.example"}, "not for this audience"),
        ({"aud": ["https://other.example", "https://third.example"]}, "not for this audience"),
        ({"sub": None}, "missing claims: sub"),
        ({"client_id": None}, "missing claims: client_id"),
        ({"jti": None, "iat": None}, "missing claims: iat, jti"),
        ({"exp": None}, "missing claims: exp"),
        ({"exp": "tomorrow"}, "exp is not a NumericDate"),
    ],
)
async def test_claims_that_do_not_fit_are_refused(
    verifier: TokenVerifier,
    key: RSAKey,
    clock: FrozenClock,
    overrides: dict[str, Any],
    message: str,
) -> None:
    """RFC 9068 §4 (iss, aud) and §2.2 (required claims)."""
    with pytest.raises(InvalidTokenError, match=message) as raised:
        await verifier.verify(mint(key, claims_at(clock, **overrides)))
    assert raised.value.error == "invalid_token"


async def test_an_audience_list_holding_ours_is_accepted(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    token = mint(key, claims_at(clock, aud=["https://other.example", AUDIENCE]))
    assert (await verifier.verify(token)).claims["iss"] == ISSUER


async def test_exp_is_honoured_with_the_leeway(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 7519 §4.1.4, 60 s of leeway for clock skew."""
    token = mint(key, claims_at(clock))  # exp = now + 300
    clock.advance(timedelta(seconds=300 + 59))
    await verifier.verify(token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="expired"):
        await verifier.verify(token)


async def test_a_future_nbf_beyond_the_leeway_is_refused(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 7519 §4.1.5."""
    now = int(clock.now().timestamp())
    await verifier.verify(mint(key, claims_at(clock, nbf=now + 60)))
    with pytest.raises(InvalidTokenError, match="not valid yet"):
        await verifier.verify(mint(key, claims_at(clock, nbf=now + 61)))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d.e", "!!!.e30.x", "W10.e30.x"])
async def test_malformed_tokens_are_invalid_token(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


@pytest.mark.parametrize("algorithms", [("none",), ("RS256", "HS256"), ()])
def test_the_pinned_list_cannot_hold_none_or_shared_secret_algorithms(
    algorithms: tuple[str, ...], verifier: TokenVerifier
) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=verifier.jwks, algorithms=algorithms)


@pytest.mark.parametrize(
    "junk", ["=", "==", "!", " ", "+/"], ids=["pad", "pad2", "bang", "space", "std"]
)
async def test_a_signature_segment_that_is_not_strict_base64url_is_refused(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock, junk: str
) -> None:
    """RFC 7515 §2: base64url without padding. A lenient decoder would ignore the junk and
    accept a second spelling of the same token."""
    token = mint(key, claims_at(clock))
    await verifier.verify(token)
    with pytest.raises(InvalidTokenError, match="bad signature"):
        await verifier.verify(token + junk)


async def test_a_published_key_meant_for_another_algorithm_does_not_verify(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock
) -> None:
    """RFC 7517 §4.4: a JWK whose ``alg`` is RS384 does not verify an RS256 signature, however
    good (joserfc's check_key, run once per key)."""
    rs384 = RSAKey.generate_key(2048, parameters={"kid": "k384", "use": "sig", "alg": "RS384"})
    jwks.keys = [public(rs384)]
    signer = RSAKey.import_key(
        {name: value for name, value in rs384.as_dict(private=True).items() if name != "alg"}
    )
    token = mint(signer, claims_at(clock), kid="k384")
    for _ in range(2):
        with pytest.raises(InvalidTokenError, match="cannot verify RS256"):
            await verifier.verify(token)


async def test_new_key_material_under_a_known_kid_is_checked_afresh(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """The per-key check is remembered for the key the JWKS served, not for its kid: when a
    refetch replaces k1 by a key meant for RS384 only, RS256 tokens under k1 are refused."""
    await verifier.verify(mint(key, claims_at(clock)))
    replacement = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS384"})
    jwks.keys = [public(replacement)]
    clock.advance(timedelta(seconds=300))  # the set is stale: the next verification refetches
    signer = RSAKey.import_key(
        {name: value for name, value in replacement.as_dict(private=True).items() if name != "alg"}
    )
    with pytest.raises(InvalidTokenError, match="cannot verify RS256"):
        await verifier.verify(mint(signer, claims_at(clock)))
    with pytest.raises(InvalidTokenError, match="cannot verify RS256"):
        await verifier.verify(mint(key, claims_at(clock)))


def test_an_unknown_algorithm_in_the_pinned_list_is_refused_at_construction(
    verifier: TokenVerifier,
) -> None:
    with pytest.raises(ValueError, match="unknown JWS algorithms"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=verifier.jwks, algorithms=["RS257"])
