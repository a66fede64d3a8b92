"""RP-Initiated Logout 1.0: which client asks, and where (if anywhere) to send the user after.

``id_token_hint`` is verified (signature, algorithm list, issuer) but its expiry is ignored, as
§2 allows: an app logs out users whose ID token expired long ago. ``post_logout_redirect_uri``
must match one the client registered, exactly; otherwise no redirect happens at all (§3).
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
class LogoutRequest:
    client: Client | None
    redirect_to: str | None  # the registered post-logout URI with state, or None: show a page
    hinted: bool = False  # a valid id_token_hint named the client: no need to ask the user


def hinted_client_id(id_token_hint: str, keys: KeySet, issuer: str) -> str | None:
    """The audience of an ID token idp issued, whatever its age; None if it is not one."""
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
    return audience if isinstance(audience, str) else None


async def check_logout(
    params: Params, clients: ClientRegistry, keys: KeySet, issuer: str
) -> LogoutRequest:
    try:
        hint, client_id = params.get("id_token_hint"), params.get("client_id")
        redirect_uri, state = params.get("post_logout_redirect_uri"), params.get("state")
    except OAuthError:
        return LogoutRequest(None, None)
    hinted = None if hint is None else hinted_client_id(hint, keys, issuer)
    if client_id is not None and hinted is not None and client_id != hinted:
        return LogoutRequest(None, None)  # §2: they must agree
    chosen = client_id or hinted
    client = None if chosen is None else await clients.find(chosen)
    if client is None or client.disabled or redirect_uri not in client.post_logout_redirect_uris:
        return LogoutRequest(client, None, hinted is not None)
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if state is not None:
        query.append(("state", state))
    target = urlunsplit(parts._replace(query=urlencode(query)))
    return LogoutRequest(client, target, hinted is not None)
