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


def reported(amr: Iterable[str], requested: Iterable[str]) -> str | None:
    """The acr a token reports for a sign-in with ``amr`` asked for ``requested`` classes: the
    strongest one asked for that the sign-in meets (OIDC Core §5.5.1.1: an essential acr must
    be one of the requested values; a sign-in of a stronger class meets a weaker one); None when
    none is met, and the token says the class reached (``acr_of``)."""
    methods = list(amr)
    return strongest(value for value in requested if meets(methods, value))


def _up_to(requested: Iterable[str], reachable: Collection[str]) -> str | None:
    """The strongest reachable class no stronger than the strongest ``requested``: a voluntary
    ``phr`` for a user with an authenticator app only is met as far as it can be, with two
    factors (the classes are ordered: a phr sign-in is a two-factor one too)."""
    ceiling = strongest(requested)
    if ceiling is None:
        return None
    return strongest([value for value in reachable if _RANK[value] <= _RANK[ceiling]])


def at_least(values: Iterable[str], floor: str) -> list[str]:
    """Each class of ``values`` idp knows, raised to ``floor`` if weaker, once each, in order:
    a requirement of one of ``values`` and of ``floor`` together (classes are ordered, so a
    sign-in meeting the raised class meets both). Unknown classes are dropped: never met."""
    raised = [max(value, floor, key=_RANK.__getitem__) for value in values if value in _RANK]
    return list(dict.fromkeys(raised))


def meets_any(amr: Iterable[str], values: Iterable[str]) -> bool:
    """Whether a sign-in with methods ``amr`` reaches one of the classes ``values``."""
    methods = list(amr)
    return any(meets(methods, value) for value in values)


def short_of(amr: Iterable[str], voluntary: str | None, essential: list[str] | None) -> bool:
    """Whether a sign-in with ``amr`` falls short of the strongest class asked for voluntarily
    (``acr_values``) or of every essential class (OIDC Core §5.5.1.1); no factor is read."""
    methods = list(amr)
    if essential is not None and not meets_any(methods, essential):
        return True
    return voluntary is not None and not meets(methods, voluntary)


def target(
    amr: Iterable[str],
    voluntary: Iterable[str] | None,
    essential: list[str] | None,
    reachable: Collection[str],
) -> str | None:
    """The class a sign-in with ``amr`` must be stepped up to, for a user who can reach
    ``reachable``: the strongest reachable class up to the one asked for voluntarily, or the
    strongest reachable essential class when none is met yet; None when the sign-in already
    reaches it. The caller has checked that an unmet essential requirement is reachable
    (``strongest(essential, reachable)``)."""
    methods = list(amr)
    if essential is not None and meets_any(methods, essential):
        essential = None
    wanted = [_up_to(voluntary, reachable)] if voluntary else []
    wanted += [strongest(essential, reachable)] if essential else []
    goal = strongest([value for value in wanted if value is not None])
    return None if goal is None or meets(methods, goal) else goal
