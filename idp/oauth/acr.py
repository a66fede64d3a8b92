"""Authentication context classes (OIDC Core §2 ``acr``) and how a sign-in's methods (RFC 8176
``amr``) reach them.

idp's three classes, weakest first, as discovery lists them:

* ``urn:idp:acr:pwd``: a password only.
* ``urn:idp:acr:mfa``: two factors (RFC 8176 "mfa"): a password and a code, or a passkey with
  user verification (something held and something known or been).
* ``phr``: phishing-resistant (OpenID EAP ACR Values 1.0 §2): a passkey with user verification
  was used, RFC 8176 "hwk" or "swk" with "user". The passkey's signature covers the origin, so a
  look-alike site cannot relay it, whatever else was typed.

A sign-in of a class also meets every weaker one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

ACR_PWD = "urn:idp:acr:pwd"  # noqa: S105 - an acr value, not a secret
ACR_MFA = "urn:idp:acr:mfa"
ACR_PHR = "phr"
ACR_VALUES = [ACR_PWD, ACR_MFA, ACR_PHR]  # weakest first
_RANK = {acr: rank for rank, acr in enumerate(ACR_VALUES)}
# RFC 8176 §2: a key held in hardware, or in software (a synced passkey: WebAuthn's backup
# eligibility says the private key may leave the device).
KEY_METHODS = frozenset({"hwk", "swk"})


def acr_of(amr: Iterable[str]) -> str:
    """The strongest class the methods ``amr`` (RFC 8176) reach."""
    methods = set(amr)
    if methods & KEY_METHODS and "user" in methods:
        return ACR_PHR
    return ACR_MFA if "mfa" in methods else ACR_PWD


def meets(amr: Iterable[str], acr: str) -> bool:
    """Whether a sign-in with methods ``amr`` reaches class ``acr`` (an unknown class: never)."""
    wanted = _RANK.get(acr)
    return wanted is not None and _RANK[acr_of(amr)] >= wanted


def reachable(*, second_factor: bool, passkey: bool) -> list[str]:
    """The classes a user can reach: with any second factor the two-factor class, with a passkey
    the phishing-resistant one."""
    return [ACR_PWD] + [ACR_MFA] * (second_factor or passkey) + [ACR_PHR] * passkey


def strongest(requested: Iterable[str], reachable: Collection[str] = ACR_VALUES) -> str | None:
    """The strongest class among ``requested`` that is in ``reachable``; None if there is none
    (values idp does not know are never met)."""
    known = [acr for acr in requested if acr in _RANK and acr in reachable]
    return max(known, key=_RANK.__getitem__, default=None)
