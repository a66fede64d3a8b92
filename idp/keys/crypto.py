"""Key material: generation, RFC 7638 thumbprints, encryption at rest, loading for signing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.settings import SettingsError, SigningAlg

JoseKey: TypeAlias = RSAKey | ECKey | OKPKey
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

KEK_FILE = "key-encryption-key"
_NONCE_BYTES = 12
# Public JWK members per key type (RFC 7518 §6, RFC 8037 §2); anything else is never published.
PUBLIC_MEMBERS = {
    "RSA": ("kty", "n", "e"),
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
}


def purpose_key(key_encryption_key: bytes, purpose: bytes) -> bytes:
    """A key for one use (CSRF tokens, device cookies, refresh secrets, ...), HMAC-SHA256 of
    its label under the key-encryption key: what one use reveals tells nothing of the others."""
    return hmac.digest(key_encryption_key, purpose, "sha256")


class KeyDecryptionError(Exception):
    """The key-encryption key does not open a stored private key (wrong IDP_KEY_ENCRYPTION_KEY)."""


@dataclass(frozen=True)
class GeneratedKey:
    kid: str
    alg: SigningAlg
    public_jwk: dict[str, Any]
    private_der: bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_key(alg: SigningAlg, *, now: datetime) -> GeneratedKey:
    """A fresh key pair for ``alg``; RSA keys also get a self-signed certificate (``x5c``)."""
    private: PrivateKey
    if alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    jose = _wrap(private)
    public = {name: jose.as_dict(private=False)[name] for name in PUBLIC_MEMBERS[jose.key_type]}
    kid = jose.thumbprint()  # RFC 7638, SHA-256
    public_jwk: dict[str, Any] = {**public, "kid": kid, "alg": alg, "use": "sig"}
    if isinstance(private, rsa.RSAPrivateKey):
        der = _self_signed_certificate(private, kid=kid, now=now)
        public_jwk["x5c"] = [base64.b64encode(der).decode("ascii")]  # RFC 7517 §4.7: not url-safe
        public_jwk["x5t#S256"] = b64url(hashlib.sha256(der).digest())
    private_der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return GeneratedKey(kid=kid, alg=alg, public_jwk=public_jwk, private_der=private_der)


def _self_signed_certificate(private: rsa.RSAPrivateKey, *, kid: str, now: datetime) -> bytes:
    """Older verifier libraries look for ``x5c``; the certificate carries no trust, only the key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"idp signing key {kid[:16]}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _wrap(private: PrivateKey) -> JoseKey:
    if isinstance(private, rsa.RSAPrivateKey):
        return RSAKey(private, private)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ECKey(private, private)
    return OKPKey(private, private)


def load_signing_key(private_der: bytes) -> JoseKey:
    """Parse a PKCS#8 private key once, for the keyring.

    The RSA consistency check is skipped: the key was generated here and is authenticated by
    AES-GCM, and the check costs ~30 ms per key.
    """
    private = serialization.load_der_private_key(
        private_der, password=None, unsafe_skip_rsa_key_validation=True
    )
    if isinstance(
        private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        return _wrap(private)
    raise TypeError(f"unsupported private key type {type(private).__name__}")


def public_pem(public_jwk: dict[str, Any]) -> str:
    """The SubjectPublicKeyInfo PEM of a key, for verifiers configured with a static PEM."""
    members = {name: public_jwk[name] for name in PUBLIC_MEMBERS[public_jwk["kty"]]}
    key: JoseKey
    if members["kty"] == "RSA":
        key = RSAKey.import_key(members)
    elif members["kty"] == "EC":
        key = ECKey.import_key(members)
    else:
        key = OKPKey.import_key(members)
    return key.as_pem(private=False).decode("ascii")


def encrypt_private_key(kek: bytes, kid: str, private_der: bytes) -> bytes:
    """AES-256-GCM with the kid as associated data: a ciphertext cannot move to another row."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, private_der, kid.encode("ascii"))


def decrypt_private_key(kek: bytes, kid: str, blob: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], kid.encode("ascii"))
    except InvalidTag:
        raise KeyDecryptionError(
            f"IDP_KEY_ENCRYPTION_KEY does not decrypt signing key {kid}"
        ) from None


def load_or_create_kek(data_dir: Path) -> bytes:
    """The embedded mode's key-encryption key: generated once into the data dir, mode 0600."""
    path = data_dir / KEK_FILE
    if not path.exists():
        # Written whole under a temporary name, then linked into place: two processes starting
        # together agree on one key, and neither ever reads a half-written file.
        temporary = data_dir / f".{KEK_FILE}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(b64url(secrets.token_bytes(32)) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    text = path.read_text().strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SettingsError("IDP_KEY_ENCRYPTION_KEY", f"{path} does not hold a 32-byte key")
    return raw
