"""Fetching Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-00):
idp's one outbound HTTP client, created by the app's lifespan (or given to ``create_app``).

What a fetch may do, since anyone can name any URL as a client_id (§6.5, SSRF):
- GET with ``Accept: application/json``, over https only, TLS verified for the URL's host;
- no redirects at all: the document is at its URL or nowhere (§4: the answer must be a 200;
  a 3xx is refused, whichever host it names);
- only a 200 whose Content-Type is ``application/json`` (§4), before any of the body is read;
- at most ``max_bytes`` (§6.6), read incrementally: a larger body is abandoned, never read whole;
- at most ``timeout`` seconds in all (resolution, connection, TLS, headers and body);
- only public addresses: ``GuardedBackend`` resolves the host itself, refuses the connection if
  any address is not public (``address_allowed``), and connects to the address it checked, so a
  second resolution cannot return another one (DNS rebinding); TLS still verifies the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from dataclasses import dataclass

import httpcore

from idp.oauth.metadata_document import (
    FETCH_TIMEOUT_SECONDS,
    MAX_DOCUMENT_BYTES,
    DocumentError,
    address_allowed,
)
from idp.settings import Settings

_HEADERS = [(b"Accept", b"application/json"), (b"User-Agent", b"idp (client metadata fetch)")]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_content_type(value: str) -> None:
    """Draft §4: a successful response has the content type ``application/json`` (or an
    ``application/<AS-defined>+json``, and idp defines none); the authorization server MUST treat
    any other as an error. Parameters (``; charset=utf-8``) are allowed, the case ignored."""
    media_type = value.partition(";")[0].strip().lower()
    if media_type != "application/json":
        shown = media_type[:60] or "none"
        raise DocumentError(
            f"the client's metadata document was served as {shown}, not application/json (draft §4)"
        )


class AddressRefusedError(httpcore.ConnectError):
    """The host resolves to an address that may not be fetched (never connected to)."""


@dataclass(frozen=True)
class FetchedDocument:
    body: bytes
    headers: dict[str, str]  # lower-cased names; the caching ones decide the expiry


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses ``address_allowed`` admits."""

    def __init__(
        self, *, allow_loopback: bool, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._allow_loopback = allow_loopback
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"{host} does not resolve ({error})") from None
        addresses = [ipaddress.ip_address(str(entry[4][0]).partition("%")[0]) for entry in found]
        return list(dict.fromkeys(addresses))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolve(host, port)
        for address in addresses:
            if not address_allowed(address, allow_loopback=self._allow_loopback):
                raise AddressRefusedError(
                    f"{host} resolves to {address}, which is not a public address: "
                    "idp does not fetch documents from private, loopback or link-local networks"
                )
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        failure: httpcore.ConnectError | None = None
        for address in addresses:  # the checked addresses, not the name: no second lookup
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("documents are not fetched over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class DocumentFetcher:
    """``fetch(url)``: the document's bytes and headers, or DocumentError saying why not."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        backend: GuardedBackend | None = None,
    ) -> None:
        """``backend``: a GuardedBackend of the caller's (tests pin its resolution)."""
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            network_backend=backend or GuardedBackend(allow_loopback=allow_loopback),
            max_keepalive_connections=0,  # documents are fetched rarely: nothing kept open
            retries=0,
        )

    @classmethod
    def of(cls, settings: Settings) -> DocumentFetcher:
        return cls(allow_loopback=settings.cimd_allow_loopback)

    async def fetch(self, url: str) -> FetchedDocument:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url)
        except TimeoutError:
            raise DocumentError(
                f"the client's metadata document did not arrive within {self.timeout:g} seconds"
            ) from None
        except AddressRefusedError as error:
            raise DocumentError(str(error)) from None
        except (httpcore.ConnectError, httpcore.TimeoutException) as error:
            raise DocumentError(
                f"the client's metadata document cannot be reached: {error}"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError) as error:
            raise DocumentError(
                f"fetching the client's metadata document failed: {error}"
            ) from None
        except httpcore.UnsupportedProtocol:
            raise DocumentError("the client_id must be an https URL") from None

    async def _fetch(self, url: str) -> FetchedDocument:
        timeouts = {name: self.timeout for name in ("connect", "read", "write", "pool")}
        async with self._pool.stream(
            "GET", url, headers=_HEADERS, extensions={"timeout": timeouts}
        ) as response:
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in response.headers
            }
            if 300 <= response.status < 400:
                raise DocumentError(
                    f"the client_id URL answered with a redirect (HTTP {response.status}); "
                    "a metadata document is served at its own URL, redirects are not followed"
                )
            if response.status != 200:
                raise DocumentError(f"the client_id URL answered HTTP {response.status}, not 200")
            check_content_type(headers.get("content-type", ""))
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_bytes:
                raise self._too_large()
            body = bytearray()
            async for chunk in response.aiter_stream():
                body += chunk
                if len(body) > self.max_bytes:  # abandoned: the rest is never read
                    raise self._too_large()
            return FetchedDocument(bytes(body), headers)

    def _too_large(self) -> DocumentError:
        return DocumentError(
            f"the client's metadata document is larger than {self.max_bytes} bytes"
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
