"""Builders and checks shared by the tests."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.keys.keyring import Keyring

PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3, computed here independently of the code under test."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def keyset(jwks_body: bytes) -> KeySet:
    return KeySet.import_key_set(json.loads(jwks_body))


def kids(jwks_body: bytes) -> set[str]:
    return {key["kid"] for key in json.loads(jwks_body)["keys"]}


def sign_token(keyring: Keyring, now: datetime, ttl: timedelta, **claims: Any) -> str:
    issued = int(now.timestamp())
    body = {"iss": "http://idp.test", "sub": "tester", "iat": issued}
    body["exp"] = issued + int(ttl.total_seconds())
    body.update(claims)
    return keyring.sign(body)


def verify(token: str, jwks_body: bytes, algorithms: list[str]) -> dict[str, Any]:
    """Verify the signature against a JWKS the way a relying service does: by kid, pinned algs."""
    return jwt.decode(token, keyset(jwks_body), algorithms=algorithms).claims


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error
