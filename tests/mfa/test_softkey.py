"""The software authenticator of tests/softkey.py against py_webauthn's real verifier: its answers
verify, and each of its forging knobs makes the verifier refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import CredentialDeviceType, PublicKeyCredentialDescriptor
from webauthn.registration.verify_registration_response import VerifiedRegistration

from tests.softkey import AuthenticatorError, SoftAuthenticator, b64url_decode

ORIGIN = "http://localhost:8000"
RP_ID = "localhost"


def creation_options(exclude: list[bytes] | None = None) -> dict[str, Any]:
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="idp",
        user_name="ada@example.com",
        user_id=b"user-handle-of-ada",
        exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in exclude or []],
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def request_options(allow: list[bytes] | None = None) -> dict[str, Any]:
    options = generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in allow or []],
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def verify_registration(options: dict[str, Any], answer: dict[str, Any]) -> VerifiedRegistration:
    return verify_registration_response(
        credential=answer,
        expected_challenge=b64url_decode(options["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )


def registered(key: SoftAuthenticator) -> VerifiedRegistration:
    options = creation_options()
    return verify_registration(options, key.register(options))


def verify_assertion(
    key: SoftAuthenticator, passkey: VerifiedRegistration, stored_count: int, **forged: Any
) -> int:
    """Verify one assertion of ``passkey``; the new sign count."""
    options = request_options([passkey.credential_id])
    verified = verify_authentication_response(
        credential=key.authenticate(options, **forged),
        expected_challenge=b64url_decode(options["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=passkey.credential_public_key,
        credential_current_sign_count=stored_count,
        require_user_verification=True,
    )
    return verified.new_sign_count


def test_registration_verifies_with_the_credential_id_and_public_key() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    options = creation_options()
    answer = key.register(options)

    verified = verify_registration(options, answer)

    (held,) = key.credentials.values()
    assert verified.credential_id == held.id == b64url_decode(answer["rawId"])
    assert verified.credential_public_key == held.cose_public_key()
    assert verified.fmt == "none"
    assert verified.user_verified
    assert verified.sign_count == 0
    assert held.user_handle == b"user-handle-of-ada"


def test_assertion_verifies_and_its_sign_count_is_counted() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    passkey = registered(key)

    first = verify_assertion(key, passkey, passkey.sign_count)
    second = verify_assertion(key, passkey, first)

    assert (first, second) == (1, 2)


def test_discoverable_sign_in_answers_with_the_user_handle() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    registered(key)

    answer = key.authenticate(request_options(allow=[]))

    assert b64url_decode(answer["response"]["userHandle"]) == b"user-handle-of-ada"


def test_counter_start_sets_the_registered_count() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID, counter_start=1)
    passkey = registered(key)

    assert passkey.sign_count == 1
    assert verify_assertion(key, passkey, passkey.sign_count) == 2


def test_without_counting_every_assertion_says_zero_and_verifies() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID, counting=False)
    passkey = registered(key)

    assert verify_assertion(key, passkey, 0) == 0
    assert verify_assertion(key, passkey, 0) == 0


def test_backup_eligible_makes_a_synced_passkey() -> None:
    synced = registered(SoftAuthenticator(ORIGIN, RP_ID, backup_eligible=True))
    device_bound = registered(SoftAuthenticator(ORIGIN, RP_ID))

    assert synced.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    assert synced.credential_backed_up
    assert device_bound.credential_device_type == CredentialDeviceType.SINGLE_DEVICE
    assert not device_bound.credential_backed_up


def test_an_excluded_credential_is_refused() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    passkey = registered(key)

    with pytest.raises(AuthenticatorError, match="InvalidStateError"):
        key.register(creation_options(exclude=[passkey.credential_id]))


# Each forgery and the refusal it must cause (a refusal for another reason would prove nothing).
FORGERIES: list[tuple[dict[str, Any], str]] = [
    ({"origin": "https://evil.example"}, "Unexpected client data origin"),
    ({"rp_id": "evil.example"}, "Unexpected RP ID hash"),
    ({"challenge": b"a challenge the server never sent"}, "challenge was not expected"),
    ({"user_verified": False}, "user was not verified"),
]


@pytest.mark.parametrize(
    ("forged", "refusal"),
    [*FORGERIES, ({"client_data_type": "webauthn.get"}, "Unexpected client data type")],
    ids=str,
)
def test_a_forged_registration_is_refused(forged: dict[str, Any], refusal: str) -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    options = creation_options()

    with pytest.raises(InvalidRegistrationResponse, match=refusal):
        verify_registration(options, key.register(options, **forged))


@pytest.mark.parametrize(
    ("forged", "refusal"),
    [
        *FORGERIES,
        ({"client_data_type": "webauthn.create"}, "Unexpected client data type"),
        ({"sign_count": 1}, "sign count of 1 was not greater than current count of 2"),
    ],
    ids=str,
)
def test_a_forged_assertion_is_refused(forged: dict[str, Any], refusal: str) -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID)
    passkey = registered(key)
    stored = verify_assertion(key, passkey, passkey.sign_count)
    stored = verify_assertion(key, passkey, stored)

    with pytest.raises(InvalidAuthenticationResponse, match=refusal):
        verify_assertion(key, passkey, stored, **forged)


def test_an_authenticator_not_made_for_user_verification_is_refused() -> None:
    key = SoftAuthenticator(ORIGIN, RP_ID, user_verified=False)
    options = creation_options()

    with pytest.raises(InvalidRegistrationResponse, match="user was not verified"):
        verify_registration(options, key.register(options))


def test_options_for_another_rp_id_are_refused_like_a_browser_would() -> None:
    key = SoftAuthenticator(ORIGIN, "example.com")

    with pytest.raises(AuthenticatorError, match="SecurityError"):
        key.register(creation_options())
    with pytest.raises(AuthenticatorError, match="SecurityError"):
        key.authenticate(request_options())


def test_creation_options_without_es256_are_refused() -> None:
    options = creation_options()
    options["pubKeyCredParams"] = [{"type": "public-key", "alg": -257}]

    with pytest.raises(AuthenticatorError, match="NotSupportedError"):
        SoftAuthenticator(ORIGIN, RP_ID).register(options)
