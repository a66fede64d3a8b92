"""What a redirect URI may be, and when a presented one matches a registered one: the one rule
for every way a client comes to exist (``idp clients add``, the admin API, dynamic registration,
Client ID Metadata Documents) and for /authorize.

A redirect URI may be (RFC 6749 §3.1.2) absolute, without fragment, wildcard or user name; https
on any host; plain http only on loopback (RFC 8252 §7.3); or a private-use scheme in reverse-DNS
form (RFC 8252 §7.1), which rules out ``javascript:``, ``data:`` and other schemes a browser
would run or render.

Loopback is the IP literals ``127.0.0.1`` and ``[::1]`` for every client, and the name
``localhost`` for a public (native) client. RFC 8252 §8.3 calls ``localhost`` NOT RECOMMENDED,
not forbidden: its risks (a listener bound beyond the loopback interface, a firewall, a broken
hosts file) fall on the app that picks the name, on the user's own machine, and the code it
receives is useless without the app's PKCE verifier. Refusing it cost interoperability: MCP
clients register exactly ``http://localhost:PORT/callback`` (Claude Code, Claude Desktop,
mcp-remote, the MCP SDKs' examples), the MCP authorization spec asks that redirect URIs be
"either localhost URLs or HTTPS URLs", and other servers (Vercel's MCP registration, fosite,
PingOne) accept ``localhost`` on any port. A client with a secret is a web server set up by an
operator, who can write ``127.0.0.1`` or https: ``localhost`` stays refused for it.

A presented URI matches a registered one by simple string comparison (RFC 6749 §3.1.2.3, RFC
9700 §4.1.3), with one exception: a registered loopback http URI matches with any port, since a
native app listens on whatever port the system gives it (RFC 8252 §7.3). Scheme, path and query
stay exact; the host is the same host (case aside, RFC 3986 §3.2.2): ``localhost`` never stands
for ``127.0.0.1`` nor the reverse, and ``localhost.evil.example`` or ``localhost@evil.example``
are other hosts. https on loopback names a server with a certificate at a port of its own and is
compared whole, like any other URI."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOCALHOST = "localhost"
_LOOPBACK_IPS = frozenset({"127.0.0.1", "::1"})

# RFC 8252 §7.3: http, a loopback host, an optional port, then the path and query; a fragment
# never matches, as none is registered. Only the host ignores case.
_LOOPBACK_REDIRECT = re.compile(
    r"http://(127\.0\.0\.1|\[::1\]|(?i:localhost))(?::([1-9][0-9]{0,4}))?([/?].*)?", re.DOTALL
)


class RedirectUriError(ValueError):
    """The redirect URI may not be registered; the message says why."""


def validate_redirect_uri(uri: str, *, public: bool) -> str:
    """``uri`` if a client (``public``: without a secret) may register it, else RedirectUriError
    (the rules are in the module docstring)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.fragment or "#" in uri:
        raise RedirectUriError(f"redirect URI {uri!r} must not have a fragment")
    if "*" in uri:
        raise RedirectUriError(f"redirect URI {uri!r}: wildcards are not allowed")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise RedirectUriError(f"redirect URI {uri!r} must be absolute")
        if "@" in parts.netloc:  # RFC 3986 §3.2.1: a user name only hides the real host
            raise RedirectUriError(f"redirect URI {uri!r} must not have a user name")
        if scheme == "http" and parts.hostname == LOCALHOST and not public:
            raise RedirectUriError(
                f"redirect URI {uri!r}: http://localhost is for native apps without a secret; "
                "a client with a secret uses https or http://127.0.0.1 (RFC 8252 §8.3)"
            )
        if scheme == "http" and parts.hostname not in {*_LOOPBACK_IPS, LOCALHOST}:
            raise RedirectUriError(f"redirect URI {uri!r}: plain http is allowed only on loopback")
    elif "." not in scheme:
        raise RedirectUriError(
            f"redirect URI {uri!r}: use https, loopback http, or a reverse-DNS private-use scheme"
        )
    return uri


def _loopback_without_port(uri: str, *, public: bool) -> tuple[str, str] | None:
    """(host, path and query) of a loopback http redirect URI, None for any other URI (and for
    ``localhost`` when the client is not public)."""
    match = _LOOPBACK_REDIRECT.fullmatch(uri)
    if match is None or int(match.group(2) or 80) > 65535:
        return None
    host = match.group(1).lower()
    if host == LOCALHOST and not public:
        return None
    return host, match.group(3) or ""


def redirect_uri_matches(registered: str, presented: str, *, public: bool) -> bool:
    """Whether ``presented`` is ``registered``, the port of a loopback http URI aside (module
    docstring); ``public``: the client has no secret."""
    if presented == registered:
        return True
    loopback = _loopback_without_port(registered, public=public)
    return loopback is not None and loopback == _loopback_without_port(presented, public=public)
