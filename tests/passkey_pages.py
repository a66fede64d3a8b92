"""Driving the passkey forms like a browser would with ``tests.softkey``: read the options a page
embeds (``<script type="application/json" id="passkey-options">``), let the authenticator answer
them, post its credential JSON with the page's hidden fields (CSRF token, signed ``challenge``,
the parked ``request``). The tests' issuer is ``http://idp.test``: RP ID ``idp.test``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.factories import PASSWORD
from tests.oauth.flow import hidden_fields
from tests.softkey import SoftAuthenticator

ORIGIN = "http://idp.test"
RP_ID = "idp.test"
SECURITY = "/account/security"
ADD = "/account/security/passkeys"
REMOVE = "/account/security/passkeys/remove"
LOGIN = "/login/passkey"
SECOND_FACTOR = "/login/second-factor"
SECOND_FACTOR_PASSKEY = "/login/second-factor/passkey"
_OPTIONS = re.compile(
    r'<script type="application/json" id="passkey-options">(.*?)</script>', re.DOTALL
)
# What a passkey's use leaves behind: the counter, the last use, sessions, spent challenges, codes.
TRACES = """
SELECT (SELECT coalesce(string_agg(sign_count::text || ':' || coalesce(last_used_at::text, '-'),
                                   ',' ORDER BY credential_id), '') FROM passkeys)
    || '|' || (SELECT count(*) FROM sessions)::text
    || '|' || (SELECT count(*) FROM webauthn_challenges)::text
    || '|' || (SELECT count(*) FROM authorization_codes)::text
"""


def authenticator(**options: Any) -> SoftAuthenticator:
    """A platform authenticator of the tests' issuer (SoftAuthenticator's keywords)."""
    return SoftAuthenticator(ORIGIN, RP_ID, **options)


def options_of(html: str) -> dict[str, Any]:
    found = _OPTIONS.search(html)
    assert found is not None, html
    options: dict[str, Any] = json.loads(found[1])
    return options


@dataclass(frozen=True)
class PasskeyForm:
    """A page's passkey form: its hidden fields and the options for the authenticator."""

    fields: dict[str, str]
    options: dict[str, Any]

    def answered(self, key: SoftAuthenticator, **forge: Any) -> dict[str, str]:
        """The form's fields with ``key``'s assertion (``forge``: SoftAuthenticator's)."""
        return {**self.fields, "credential": json.dumps(key.authenticate(self.options, **forge))}


async def form_of(http: httpx.AsyncClient, path: str) -> PasskeyForm:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return PasskeyForm(hidden_fields(page.text), options_of(page.text))


async def account_sign_in(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """Post the password on /account/sign-in: /account, or /login/second-factor."""
    form = await http.get("/account/sign-in")
    data = {**hidden_fields(form.text), "email": email, "password": password}
    return await http.post("/account/sign-in", data=data)


async def add_passkey(
    http: httpx.AsyncClient, key: SoftAuthenticator, name: str = "Laptop", **forge: Any
) -> httpx.Response:
    """Register a passkey of ``key`` on /account/security (the browser signed in)."""
    form = await form_of(http, SECURITY)
    credential = key.register(form.options, **forge)
    data = {**form.fields, "credential": json.dumps(credential), "name": name}
    return await http.post(ADD, data=data)


async def enrol_passkey(
    http: httpx.AsyncClient, email: str, key: SoftAuthenticator, name: str = "Laptop"
) -> None:
    """Sign in with the password, add a passkey, and forget the cookies again."""
    signed = await account_sign_in(http, email)
    assert signed.headers["location"] == "/account", signed.text
    added = await add_passkey(http, key, name)
    assert added.headers["location"] == f"{SECURITY}?done=passkey", added.text
    http.cookies.clear()


async def traces(pool: asyncpg.Pool) -> str:
    trace: str = await pool.fetchval(TRACES)
    return trace


def only_credential(key: SoftAuthenticator) -> bytes:
    (credential_id,) = key.credentials
    return credential_id
