"""A real SMTP server in the test process (aiosmtpd, on its own thread), keeping every mail it
receives: the tests read the mail idp sends from here. It can offer STARTTLS, speak TLS from the
first byte, and require AUTH, with a certificate made for the test (``TestAuthority``)."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import re
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import free_port

SinkTls = Literal["none", "starttls", "implicit"]


class TestAuthority:
    """A CA made for one test and a server certificate it signed for 127.0.0.1 and localhost.
    Point ``SSL_CERT_FILE`` at ``ca_file`` and ``ssl.create_default_context()`` (aiosmtplib's)
    trusts it, in this process and in the ``idp`` processes a test starts."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, directory: Path) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self._chain = directory / "server.pem"
        self._chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self._key = directory / "server.key"
        self._key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._chain, self._key)
        return context


@dataclass(frozen=True)
class Arrival:
    """How a mail came: over TLS or not, after which AUTH login."""

    tls: bool
    login: str | None


class _Keeper:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        refusal = self._sink.refusals.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("sslcontext") is not None
        data: object = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        self._sink.received(message, list(envelope.rcpt_tos), Arrival(tls, login))
        return "250 OK"


class _Authenticator:
    def __init__(self, login: str, password: str) -> None:
        self._expected = (login.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self._expected
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class SmtpSink:
    """``start()``/``stop()`` on one port, so a test can take the server away and bring it back."""

    def __init__(
        self,
        port: int | None = None,
        *,
        tls: SinkTls = "none",
        authority: TestAuthority | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        """``tls`` "starttls" offers STARTTLS, "implicit" speaks TLS from the first byte (both
        need ``authority``); ``login`` (user, password): AUTH with them only, required with
        STARTTLS."""
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.arrivals: list[Arrival] = []
        # Recipient -> the reply RCPT TO gets instead of 250 (e.g. "550 5.1.1 no such user");
        # a test may change it while the server runs.
        self.refusals: dict[str, str] = {}
        self._tls = tls
        self._authority = authority
        self._login = login
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"{'smtps' if self._tls == 'implicit' else 'smtp'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self._tls != "none":
            assert self._authority is not None, "TLS needs a TestAuthority"
            context = self._authority.server_context()
            key = "ssl_context" if self._tls == "implicit" else "tls_context"
            options[key] = context
        if self._login is not None:
            options["authenticator"] = _Authenticator(*self._login)
            # aiosmtpd knows TLS only from STARTTLS: over implicit TLS it would hide AUTH, and
            # it warns about requiring AUTH without TLS. There, AUTH is offered, not required
            # (``arrivals`` says who logged in).
            options["auth_require_tls"] = options["auth_required"] = self._tls == "starttls"
        self._controller = Controller(
            _Keeper(self), hostname="127.0.0.1", port=self.port, **options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(
        self, message: EmailMessage, recipients: list[str], arrival: Arrival | None = None
    ) -> None:
        with self._lock:
            self.messages.append(message)
            self.recipients.append(recipients)
            self.arrivals.append(arrival or Arrival(tls=False, login=None))

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, within: float = 10.0) -> EmailMessage:
        """The ``count``-th mail to ``address``, once it has arrived (it travels through the real
        outbox and sender; the server's thread cannot set an asyncio event, so this polls)."""
        async with asyncio.timeout(within):
            while len(self.to(address)) < count:  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.02)
        return self.to(address)[count - 1]


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    """Poll ``condition`` until it holds: for what other processes do, which no event of this
    one announces."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - see above
            await asyncio.sleep(0.05)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: Any = part.get_content()
    return str(content)


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    """The first link to ``path`` (e.g. ``/verify-email``) in the plain-text body."""
    match = re.search(rf"https?://\S+{re.escape(path)}\?token=[A-Za-z0-9_-]+", text_of(message))
    assert match is not None, f"no {path} link in: {text_of(message)}"
    return match.group(0)
