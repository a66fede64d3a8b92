"""A software WebAuthn authenticator and the browser around it, for tests and the passkey bench.

``SoftAuthenticator`` plays both halves of a passkey ceremony in pure Python: the client (it
writes ``clientDataJSON`` for its origin) and a platform authenticator (ES256 keys, attestation
format "none", AAGUID of zeros). It reads the options a server sends as JSON
(py_webauthn's ``options_to_json``) and answers what a browser's ``PublicKeyCredential.toJSON()``
gives, so a test can post its answer as is.

Keyword arguments of ``register``/``authenticate`` forge one answer for hostile-input tests:
``origin``, ``rp_id`` (hashed into authenticator data), ``challenge``, ``client_data_type``,
``user_verified`` and (assertions only) ``sign_count``. Each changes that one answer only.

WebAuthn L2 §6.1 (authenticator data), §6.5.4 (attestation object), §5.8.1 (client data),
§8.7 ("none" attestation); RFC 9053 §2.1 and RFC 9052 §7 (the COSE EC2 key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ES256 = -7  # COSE algorithm: ECDSA with SHA-256 on P-256

# Authenticator data flags, WebAuthn L2 §6.1.
UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40

AAGUID_NONE = bytes(16)


class AuthenticatorError(Exception):
    """The authenticator refuses, as a browser's ``DOMException`` would (named in the message)."""


@dataclass
class Credential:
    """A credential the authenticator holds: a discoverable passkey."""

    id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int

    def cose_public_key(self) -> bytes:
        """The COSE_Key of the public half: kty EC2 (2), alg ES256, crv P-256 (1), x, y."""
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: ES256,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            },
            canonical=True,
        )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A platform authenticator with user verification, bound to one origin and RP ID.

    ``backup_eligible`` makes synced passkeys (flags BE and BS: eligible and backed up).
    ``counter_start`` is the sign count at registration; each assertion adds one, unless
    ``counting`` is off: then the count stays at ``counter_start``, as passkey providers that
    always send 0 do.
    """

    def __init__(
        self,
        origin: str,
        rp_id: str,
        *,
        backup_eligible: bool = False,
        user_verified: bool = True,
        counter_start: int = 0,
        counting: bool = True,
    ) -> None:
        self.origin = origin
        self.rp_id = rp_id
        self.backup_eligible = backup_eligible
        self.user_verified = user_verified
        self.counter_start = counter_start
        self.counting = counting
        self.credentials: dict[bytes, Credential] = {}

    def register(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        client_data_type: str = "webauthn.create",
        user_verified: bool | None = None,
    ) -> dict[str, Any]:
        """Create a credential from creation options; the RegistrationResponseJSON.

        Refuses an RP ID other than its own, a list of algorithms without ES256 and a credential
        it already holds among ``excludeCredentials`` (WebAuthn L2 §6.3.2 steps 2, 3).
        """
        rp = options.get("rp", {})
        self._check_rp_id(rp.get("id"))
        algs = [param.get("alg") for param in options.get("pubKeyCredParams", [])]
        if algs and ES256 not in algs:
            raise AuthenticatorError("NotSupportedError: ES256 not among pubKeyCredParams")
        for excluded in options.get("excludeCredentials", []):
            if b64url_decode(excluded["id"]) in self.credentials:
                raise AuthenticatorError("InvalidStateError: a credential here is excluded")

        credential = Credential(
            id=os.urandom(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=self.rp_id,
            user_handle=b64url_decode(options["user"]["id"]),
            sign_count=self.counter_start,
        )
        self.credentials[credential.id] = credential

        client_data = self._client_data(
            client_data_type, challenge or b64url_decode(options["challenge"]), origin
        )
        attested = (
            AAGUID_NONE
            + struct.pack(">H", len(credential.id))
            + credential.id
            + credential.cose_public_key()
        )
        auth_data = self._auth_data(
            rp_id or self.rp_id, AT, user_verified, credential.sign_count, attested
        )
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def authenticate(
        self,
        options: dict[str, Any],
        *,
        credential_id: bytes | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        client_data_type: str = "webauthn.get",
        user_verified: bool | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """Sign an assertion from request options; the AuthenticationResponseJSON.

        The credential is ``credential_id`` if given (even one outside ``allowCredentials``, as a
        hostile client may send), else the first held one in ``allowCredentials``, else (an empty
        list: discoverable sign-in) the newest one for the RP ID. ``sign_count`` writes that
        count into this answer only; the stored counter moves as usual.
        """
        self._check_rp_id(options.get("rpId"))
        credential = self._choose(options.get("allowCredentials", []), credential_id)
        if self.counting:
            credential.sign_count += 1
        client_data = self._client_data(
            client_data_type, challenge or b64url_decode(options["challenge"]), origin
        )
        auth_data = self._auth_data(
            rp_id or credential.rp_id,
            0,
            user_verified,
            credential.sign_count if sign_count is None else sign_count,
            b"",
        )
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def _check_rp_id(self, requested: str | None) -> None:
        # A browser refuses an RP ID its page may not claim (WebAuthn L2 §5.1.3 step 8).
        if requested is not None and requested != self.rp_id:
            raise AuthenticatorError(f"SecurityError: RP ID {requested!r} is not {self.rp_id!r}")

    def _choose(self, allowed: list[dict[str, Any]], credential_id: bytes | None) -> Credential:
        if credential_id is not None:
            if credential_id not in self.credentials:
                raise AuthenticatorError("NotAllowedError: no such credential here")
            return self.credentials[credential_id]
        if allowed:
            for descriptor in allowed:
                held = self.credentials.get(b64url_decode(descriptor["id"]))
                if held is not None and held.rp_id == self.rp_id:
                    return held
        else:
            for held in reversed(self.credentials.values()):
                if held.rp_id == self.rp_id:
                    return held
        raise AuthenticatorError("NotAllowedError: no credential for this request")

    def _client_data(self, client_data_type: str, challenge: bytes, origin: str | None) -> bytes:
        """CollectedClientData, keys in the order browsers write them (WebAuthn L2 §5.8.1.1)."""
        return json.dumps(
            {
                "type": client_data_type,
                "challenge": b64url(challenge),
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def _auth_data(
        self, rp_id: str, flags: int, user_verified: bool | None, count: int, attested: bytes
    ) -> bytes:
        flags |= UP
        if self.user_verified if user_verified is None else user_verified:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        rp_id_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_id_hash + bytes([flags]) + struct.pack(">I", count) + attested
