"""The lifecycle as a pure state machine: no database, no key material."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from idp.db.signing_keys import KeyRecord
from idp.keys.lifecycle import (
    CreateKey,
    Demote,
    KeyLifecycleError,
    Promote,
    Retire,
    Revoke,
    next_change,
    plan_revocation,
    plan_rotation,
    retire_at,
    tick,
)
from idp.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = Settings(
    key_rotation_interval=timedelta(days=30),
    key_prepublish=timedelta(days=1),
    access_token_ttl=timedelta(minutes=10),
    max_access_token_ttl=timedelta(minutes=10),
    clock_skew=timedelta(seconds=60),
    key_check_interval=timedelta(seconds=60),
)


def active(kid: str = "a", at: datetime = T0) -> KeyRecord:
    return KeyRecord(kid, "RS256", "active", created_at=at, activated_at=at)


def pending(kid: str = "p", at: datetime = T0, alg: str = "RS256") -> KeyRecord:
    return KeyRecord(kid, alg, "pending", created_at=at)  # type: ignore[arg-type]


def retiring(kid: str, last_signed: datetime) -> KeyRecord:
    return KeyRecord(
        kid, "RS256", "retiring", created_at=T0, activated_at=T0, last_signed_at=last_signed
    )


def test_empty_database_gets_an_active_key_and_a_next_one() -> None:
    assert tick([], T0, SETTINGS) == [
        CreateKey("RS256", "active", "no signing key"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_nothing_happens_between_rotations() -> None:
    assert tick([active(), pending()], T0 + timedelta(days=10), SETTINGS) == []


def test_due_rotation_promotes_the_prepublished_key_and_publishes_a_successor() -> None:
    now = T0 + timedelta(days=30)
    assert tick([active(), pending()], now, SETTINGS) == [
        Demote("a", "scheduled rotation"),
        Promote("p", "scheduled rotation"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_rotation_waits_until_the_successor_was_published_for_prepublish() -> None:
    fresh = pending(at=T0 + timedelta(days=29, hours=12))  # published 12h before due
    due = T0 + timedelta(days=30)
    assert tick([active(), fresh], due, SETTINGS) == []
    later = fresh.created_at + SETTINGS.key_prepublish
    assert Promote("p", "scheduled rotation") in tick([active(), fresh], later, SETTINGS)


def test_retiring_key_leaves_only_after_its_tokens_expired() -> None:
    demoted = retiring("old", last_signed=T0)
    deadline = retire_at(demoted, SETTINGS)
    assert deadline == T0 + timedelta(minutes=10) + timedelta(seconds=60) + timedelta(seconds=60)
    keys = [demoted, active("a"), pending()]
    assert tick(keys, deadline - timedelta(seconds=1), SETTINGS) == []
    assert tick(keys, deadline, SETTINGS) == [Retire("old", "every token it signed has expired")]


ES256 = replace(SETTINGS, signing_alg="ES256")


def test_signing_alg_change_publishes_a_next_key_of_the_new_algorithm_at_once() -> None:
    transitions = tick([active(), pending()], T0 + timedelta(days=1), ES256)
    assert transitions == [CreateKey("ES256", "pending", "next key")]


def test_processes_with_different_algorithms_do_not_undo_each_other() -> None:
    keys = [active(), pending("p"), pending("e", alg="ES256")]
    now = T0 + timedelta(days=2)
    assert tick(keys, now, SETTINGS) == []
    assert tick(keys, now, ES256) == []


def test_new_algorithm_takes_over_at_rotation_and_the_old_pending_key_retires() -> None:
    keys = [active(), pending("p"), pending("e", T0 + timedelta(days=1), alg="ES256")]
    assert tick(keys, T0 + timedelta(days=30), ES256) == [
        Demote("a", "scheduled rotation"),
        Promote("e", "scheduled rotation"),
        Retire("p", "a ES256 key took over; this one never signed"),
        CreateKey("ES256", "pending", "next key"),
    ]


def test_missing_active_key_promotes_the_pending_one() -> None:
    assert tick([pending()], T0, SETTINGS) == [
        Promote("p", "no active key"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_manual_rotation_promotes_pending_and_refuses_within_a_minute() -> None:
    now = T0 + timedelta(hours=1)
    assert plan_rotation([active(), pending()], now, SETTINGS) == [
        Demote("a", "manual rotation"),
        Promote("p", "manual rotation"),
        CreateKey("RS256", "pending", "next key"),
    ]
    with pytest.raises(KeyLifecycleError, match="less than a minute"):
        plan_rotation([active(at=now)], now + timedelta(seconds=30), SETTINGS)


def test_manual_rotation_refuses_a_next_key_verifiers_may_not_hold_yet() -> None:
    young = pending(at=T0 + timedelta(hours=1))
    just_too_young = young.created_at + SETTINGS.min_publication - timedelta(seconds=1)
    with pytest.raises(KeyLifecycleError, match="published too recently"):
        plan_rotation([active(), young], just_too_young, SETTINGS)
    transitions = plan_rotation([active(), young], just_too_young + timedelta(seconds=1), SETTINGS)
    assert Promote("p", "manual rotation") in transitions


def test_forced_manual_rotation_right_after_start_up_rotates_and_says_forced() -> None:
    # Start-up made both keys at T0: the active one is seconds old, the next one unpublished
    # long enough; both refusals apply, and --force overrides them.
    now = T0 + timedelta(seconds=5)
    with pytest.raises(KeyLifecycleError, match="rotate again in"):
        plan_rotation([active(), pending()], now, SETTINGS)
    assert plan_rotation([active(), pending()], now, SETTINGS, force=True) == [
        Demote("a", "manual rotation, forced"),
        Promote("p", "manual rotation, forced"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_forcing_a_rotation_that_needs_no_force_is_a_plain_manual_rotation() -> None:
    now = T0 + timedelta(hours=1)
    assert plan_rotation([active(), pending()], now, SETTINGS, force=True) == plan_rotation(
        [active(), pending()], now, SETTINGS
    )


def test_cli_plans_keep_the_active_keys_algorithm_whatever_the_shell_says() -> None:
    es_active = KeyRecord("a", "ES256", "active", created_at=T0, activated_at=T0)
    assert plan_revocation([es_active], "a", "x", SETTINGS) == [
        Revoke("a", "x"),
        CreateKey("ES256", "active", "active key revoked"),
        CreateKey("ES256", "pending", "next key"),
    ]


def test_revoking_the_active_key_switches_to_the_pending_key() -> None:
    assert plan_revocation([active(), pending()], "a", "stolen", SETTINGS) == [
        Revoke("a", "stolen"),
        Promote("p", "active key revoked"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_revoking_active_without_pending_creates_a_new_signer() -> None:
    assert plan_revocation([active()], "a", "stolen", SETTINGS) == [
        Revoke("a", "stolen"),
        CreateKey("RS256", "active", "active key revoked"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_revoke_all_revokes_every_published_key_and_starts_fresh() -> None:
    keys = [active(), pending(), retiring("old", T0)]
    transitions = plan_revocation(keys, None, "kek leaked", SETTINGS)
    assert {t.kid for t in transitions if isinstance(t, Revoke)} == {"a", "p", "old"}
    assert [t for t in transitions if isinstance(t, CreateKey)] == [
        CreateKey("RS256", "active", "every key revoked"),
        CreateKey("RS256", "pending", "next key"),
    ]


def test_revoking_unknown_or_dead_keys_is_refused() -> None:
    with pytest.raises(KeyLifecycleError, match="no signing key"):
        plan_revocation([active()], "nope", "x", SETTINGS)
    dead = KeyRecord("r", "RS256", "retired", created_at=T0)
    with pytest.raises(KeyLifecycleError, match="already retired"):
        plan_revocation([active(), dead], "r", "x", SETTINGS)


def test_next_change_is_the_earliest_of_rotation_and_retirement() -> None:
    now = T0 + timedelta(minutes=1)
    keys = [active(), pending(), retiring("old", last_signed=T0)]
    assert next_change(keys, now, SETTINGS) == retire_at(keys[2], SETTINGS)
    assert next_change([active(), pending()], now, SETTINGS) == T0 + timedelta(days=30)
    assert next_change([active()], now, SETTINGS) == now  # a next key is due at once
    # Due, but the successor is young: the rotation waits for it to be published long enough.
    young = pending(at=T0 + timedelta(days=29, hours=20))
    assert next_change([active(), young], now, SETTINGS) == young.created_at + timedelta(days=1)
