"""RP-Initiated Logout 1.0: which client asks, whose session its hint names, and where (if
anywhere) to send the user after.

``id_token_hint`` is verified (signature, algorithm list, issuer) but its expiry is ignored, as
§2 allows: an app logs out users whose ID token expired long ago. ``post_logout_redirect_uri``
must match one the client registered, exactly; otherwise no redirect happens at all (§3).

A valid hint identifies the client, not the browser: anyone can hold one (their own). So it
spares the user the question only when it names the browser's current session
(``Hint.names``); §2 requires the question "if the supplied ID Token does not belong to the
current OP session with the RP and/or currently logged in End-User", and §6 calls logout
requests that are not so bound a means of denial of service.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.db.clients import Client
from idp.oauth.client_registry import ClientRegistry
from idp.oauth.errors import OAuthError
from idp.oauth.params import Params
from idp.settings import SIGNING_ALGS


@dataclass(frozen=True)
class Hint:
    """What a valid ``id_token_hint`` says: for which client, about which user and session."""

    client_id: str
    sub: str
    sid: str | None

    def names(self, user_id: str, sid: str) -> bool:
        """§2: the hint belongs to this session: same user, and same session when it says.
        Both values are public identifiers, not secrets: a plain comparison is right."""
        return self.sub == user_id and (self.sid is None or self.sid == sid)


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    redirect_to: str | None  # the registered post-logout URI with state, or None: show a page
    hint: Hint | None = None  # a valid id_token_hint, whoever's it is


def read_hint(id_token_hint: str, keys: KeySet, issuer: str) -> Hint | None:
    """An ID token idp issued, whatever its age; None if it is not one."""
    try:
        decoded = jwt.decode(id_token_hint, keys, algorithms=list(SIGNING_ALGS))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = decoded.claims
    if claims.get("iss") != issuer or decoded.header.get("typ") == "at+jwt":
        return None
    audience = claims.get("aud")
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else claims.get("azp")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not isinstance(audience, str) or not isinstance(sub, str):
        return None
    if sid is not None and not isinstance(sid, str):
        return None
    return Hint(audience, sub, sid)


async def check_logout(
    params: Params, clients: ClientRegistry, keys: KeySet, issuer: str
) -> LogoutRequest:
    try:
        id_token_hint, client_id = params.get("id_token_hint"), params.get("client_id")
        redirect_uri, state = params.get("post_logout_redirect_uri"), params.get("state")
    except OAuthError:
        return LogoutRequest(None, None)
    hint = None if id_token_hint is None else read_hint(id_token_hint, keys, issuer)
    if id_token_hint is not None and hint is None:
        return LogoutRequest(None, None)  # §4: after an error, no post-logout redirect
    if client_id is not None and hint is not None and client_id != hint.client_id:
        return LogoutRequest(None, None)  # §2: they must agree
    chosen = client_id or (hint.client_id if hint is not None else None)
    client = None if chosen is None else await clients.find(chosen)
    if client is None or client.disabled or redirect_uri not in client.post_logout_redirect_uris:
        return LogoutRequest(client, None, hint)
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if state is not None:
        query.append(("state", state))
    target = urlunsplit(parts._replace(query=urlencode(query)))
    return LogoutRequest(client, target, hint)
