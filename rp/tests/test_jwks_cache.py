"""The JWKS cache against a real HTTP server: RFC 9111 freshness, ETag revalidation, the
unknown-kid rate limit, shared fetches, failing closed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from joserfc.jwk import RSAKey

from conftest import FrozenClock, claims_at, mint, new_key, public
from idp_rp import InvalidTokenError, TokenVerifier
from jwks_server import JwksServer


async def test_keys_are_reused_without_a_request_while_their_max_age_lasts(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 9111 §5.2.2.1: a response is fresh for max-age seconds."""
    await verifier.verify(mint(key, claims_at(clock)))
    clock.advance(timedelta(seconds=299))
    await verifier.verify(mint(key, claims_at(clock)))
    assert len(jwks.requests) == 1


async def test_a_key_dropped_from_the_jwks_is_refused_once_the_max_age_it_was_served_with_ends(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, other_key: RSAKey, clock: FrozenClock
) -> None:
    """The issuer revokes k1 (no longer published): the cache may trust it until the max-age
    it was served with, and not one second longer (revalidation before reuse, RFC 9111 §4)."""
    token = mint(key, claims_at(clock, exp=int(clock.now().timestamp()) + 3600))
    await verifier.verify(token)
    jwks.keys = [public(other_key)]
    clock.advance(timedelta(seconds=299))
    await verifier.verify(token)  # still within the freshness promised
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="no key 'k1'"):
        await verifier.verify(token)
    assert len(jwks.requests) == 2, "the revalidation was the refetch: no second one for the kid"


async def test_a_stale_set_is_revalidated_with_if_none_match_and_a_304_renews_its_freshness(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 9110 §13.1.2 If-None-Match; RFC 9111 §4.3.4: a 304 freshens the stored response."""
    await verifier.verify(mint(key, claims_at(clock)))
    clock.advance(timedelta(seconds=300))
    await verifier.verify(mint(key, claims_at(clock)))
    assert [(r.if_none_match, r.status) for r in jwks.requests] == [
        (None, 200),
        (jwks.etag, 304),
    ]
    clock.advance(timedelta(seconds=299))
    await verifier.verify(mint(key, claims_at(clock)))
    assert len(jwks.requests) == 2, "the 304 renewed the max-age"


@pytest.mark.parametrize(
    "cache_control",
    ["no-store", "no-cache", "public", None, "max-age=300, no-cache", "no-store, max-age=300"],
)
async def test_no_store_no_cache_or_no_max_age_revalidate_before_every_verification(
    verifier: TokenVerifier,
    jwks: JwksServer,
    key: RSAKey,
    clock: FrozenClock,
    cache_control: str | None,
) -> None:
    """RFC 9111 §5.2.2.4/§5.2.2.5 (whatever max-age says beside them); without max-age no
    heuristic freshness is assumed."""
    jwks.cache_control = cache_control
    for _ in range(3):
        await verifier.verify(mint(key, claims_at(clock)))
    assert len(jwks.requests) == 3


async def test_an_age_header_shortens_the_freshness_left(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """RFC 9111 §4.2.3: a response that already spent 290 s in a shared cache has 10 s left."""
    jwks.age = 290
    await verifier.verify(mint(key, claims_at(clock)))
    clock.advance(timedelta(seconds=10))
    await verifier.verify(mint(key, claims_at(clock)))
    assert len(jwks.requests) == 2


async def test_a_new_kid_within_the_max_age_is_fetched_at_once(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, other_key: RSAKey, clock: FrozenClock
) -> None:
    """Rotation: a token signed by a key published after the last fetch is accepted."""
    await verifier.verify(mint(key, claims_at(clock)))
    jwks.keys = [public(key), public(other_key)]
    claims = await verifier.verify(mint(other_key, claims_at(clock)))
    assert claims.subject == "user-1"
    assert len(jwks.requests) == 2


async def test_unknown_kids_trigger_at_most_n_refetches_a_minute(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """A burst of tokens with made-up kids cannot make the verifier hammer the issuer
    (the fixture's limit: 3 a minute)."""
    await verifier.verify(mint(key, claims_at(clock)))
    for number in range(10):
        stranger = new_key(f"made-up-{number}") if number < 2 else key
        token = mint(stranger, claims_at(clock), kid=f"made-up-{number}")
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)
    assert len(jwks.requests) == 1 + 3
    await verifier.verify(mint(key, claims_at(clock)))  # known kids still work meanwhile
    clock.advance(timedelta(seconds=60))
    with pytest.raises(InvalidTokenError):
        await verifier.verify(mint(key, claims_at(clock), kid="made-up-again"))
    assert len(jwks.requests) == 1 + 3 + 1, "a minute later one more refetch is allowed"


async def test_concurrent_verifications_share_one_fetch(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    tokens = [mint(key, claims_at(clock)) for _ in range(20)]
    verified = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert len(verified) == 20
    assert len(jwks.requests) == 1


@pytest.mark.parametrize("failure", ["500", "not a jwks", "not json", "server gone"])
async def test_a_failed_fetch_while_the_set_is_stale_fails_closed(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock, failure: str
) -> None:
    """Stale keys are never used as a fallback: an unreachable JWKS means invalid_token."""
    await verifier.verify(mint(key, claims_at(clock)))
    clock.advance(timedelta(seconds=300))
    if failure == "500":
        jwks.failure = 500
    elif failure == "not a jwks":
        jwks.keys, jwks.body_override = [], b'{"keys": "nope"}'
    elif failure == "not json":
        jwks.keys, jwks.body_override = [], b"<html>"
    else:
        verifier.jwks.jwks_uri = "http://127.0.0.1:9/jwks.json"  # discard port: refused
    with pytest.raises(InvalidTokenError, match="JWKS is unavailable") as raised:
        await verifier.verify(mint(key, claims_at(clock)))
    assert raised.value.error == "invalid_token"


async def test_a_first_fetch_that_fails_is_invalid_token_not_an_exception(
    jwks: JwksServer, key: RSAKey, clock: FrozenClock, verifier: TokenVerifier
) -> None:
    jwks.failure = 503
    with pytest.raises(InvalidTokenError, match="HTTP 503"):
        await verifier.verify(mint(key, claims_at(clock)))


async def _stale(verifier: TokenVerifier, key: RSAKey, clock: FrozenClock) -> str:
    """A token valid for an hour, verified once (its key cached for max-age 300), and the clock
    then at max-age: the next verification must revalidate."""
    token = mint(key, claims_at(clock, exp=int(clock.now().timestamp()) + 3600))
    await verifier.verify(token)
    clock.advance(timedelta(seconds=300))
    return token


async def _outage_step(verifier: TokenVerifier, token: str, requests: int) -> None:
    """``requests`` verifications at one instant of an outage: each fails closed."""
    for _ in range(requests):
        with pytest.raises(InvalidTokenError, match="JWKS is unavailable: HTTP 500"):
            await verifier.verify(token)


async def test_during_a_jwks_outage_the_issuer_is_asked_once_per_backoff_step(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """Five requests every half second for 200 s of outage send a fetch at 0, 1, 3, 7, 15, 31,
    63 s (the wait doubling from 1 s) and then every 60 s: not one per request; and each of the
    2,005 verifications fails closed although the stale set holds the token's key."""
    token = await _stale(verifier, key, clock)
    jwks.failure = 500
    fetched_at: list[float] = []
    for step in range(401):
        before = len(jwks.requests)
        await _outage_step(verifier, token, requests=5)
        fetched_at += [step / 2] * (len(jwks.requests) - before)
        clock.advance(timedelta(milliseconds=500))
    assert fetched_at == [0, 1, 3, 7, 15, 31, 63, 123, 183]


async def test_verifications_waiting_out_a_backoff_send_no_request_even_concurrently(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    token = await _stale(verifier, key, clock)
    verifier.jwks.jwks_uri = "http://127.0.0.1:9/jwks.json"  # discard port: refused
    with pytest.raises(InvalidTokenError, match="JWKS is unavailable"):
        await verifier.verify(token)
    fetches = verifier.jwks.fetches
    outcomes = await asyncio.gather(
        *(verifier.verify(token) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(outcome, InvalidTokenError) for outcome in outcomes)
    assert verifier.jwks.fetches == fetches


async def test_once_the_backoff_ends_a_recovered_issuer_is_used_at_once_and_the_backoff_resets(
    verifier: TokenVerifier, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    token = await _stale(verifier, key, clock)
    jwks.failure = 500
    await _outage_step(verifier, token, requests=1)  # fetch 2 fails: wait 1 s
    clock.advance(timedelta(seconds=1))
    await _outage_step(verifier, token, requests=1)  # fetch 3 fails: wait 2 s
    jwks.failure = None  # the issuer is back ...
    clock.advance(timedelta(milliseconds=1999))
    await _outage_step(verifier, token, requests=1)  # ... but the backoff is not over
    assert len(jwks.requests) == 3
    clock.advance(timedelta(milliseconds=1))
    claims = await verifier.verify(token)  # the first request after it fetches, and succeeds
    assert claims.subject == "user-1"
    assert len(jwks.requests) == 4
    clock.advance(timedelta(seconds=300))  # a later outage starts again from 1 s
    jwks.failure = 500
    await _outage_step(verifier, token, requests=1)
    clock.advance(timedelta(seconds=1))
    await _outage_step(verifier, token, requests=1)
    assert len(jwks.requests) == 6
