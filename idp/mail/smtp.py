"""Talking SMTP (aiosmtplib) as ``IDP_SMTP_URL`` says:

- ``smtp://[user:pass@]host[:port]``: STARTTLS when the server offers it (RFC 3207), port 25;
- ``smtp://...?tls=require``: STARTTLS or no mail at all;
- ``smtps://[user:pass@]host[:port]``: TLS from the first byte (RFC 8314 §3.3), port 465.

User and password are percent-decoded. No error message repeats the URL or the password.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

from idp.mail.message import Mail

TIMEOUT = 10.0  # seconds for connecting and for each SMTP command
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_ERROR_LENGTH = 300

TlsMode = Literal["opportunistic", "required", "implicit"]


class SmtpError(Exception):
    """One line saying why mail could not go: never the URL, never the password."""


@dataclass(frozen=True)
class Refused:
    """Why one mail did not go (``SmtpServer.explain``: the server's reply code and text, never
    the mail's body). ``permanent``: trying again cannot help, so the mail is given up."""

    reason: str
    permanent: bool = False


def is_permanent(error: aiosmtplib.SMTPException) -> bool:
    """Whether a server's refusal of one mail is for good: a 5yz reply is a permanent negative
    completion, 4yz a transient one worth another try (RFC 5321 §4.2.1). A refused sender
    (MAIL FROM) is not: it says IDP_MAIL_FROM or the login is wrong, which the operator fixes,
    and giving up would drop every mail in the queue meanwhile."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(one.code >= 500 for one in error.recipients)
    if isinstance(error, aiosmtplib.SMTPSenderRefused):
        return False
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 500


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """``url`` was checked by ``idp.settings.check_smtp_url``."""
        parts = urlsplit(url)
        assert parts.hostname is not None
        tls: TlsMode = (
            "implicit"
            if parts.scheme == "smtps"
            else ("required" if parts.query == "tls=require" else "opportunistic")
        )
        return cls(
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[parts.scheme],
            tls=tls,
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
        )

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.tls == "implicit",
            # None: aiosmtplib upgrades when the server offers STARTTLS, and goes on in the
            # clear when it does not; True: it refuses a server that does not offer it.
            start_tls={"opportunistic": None, "required": True, "implicit": False}[self.tls],
            timeout=TIMEOUT,
        )

    def explain(self, error: BaseException) -> str:
        """One line for a log, a row's ``last_error`` or the CLI."""
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
            text = "mail server refused: " + "; ".join(
                f"{refused.code} {refused.message}" for refused in error.recipients
            )
        elif isinstance(error, aiosmtplib.SMTPResponseException):
            text = f"mail server refused: {error.code} {error.message}"
        elif isinstance(error, aiosmtplib.SMTPConnectError | OSError | TimeoutError):
            cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
            why = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
            text = f"cannot reach {self.address}: {why or type(error).__name__}"
        elif isinstance(error, aiosmtplib.SMTPException) and "STARTTLS" in str(error):
            text = f"{self.address} does not offer STARTTLS, and IDP_SMTP_URL says ?tls=require"
        else:
            text = f"{self.address}: {error or type(error).__name__}"
        return self._redact(" ".join(text.split()))[:_ERROR_LENGTH]

    def _redact(self, text: str) -> str:
        for secret in (self.password, f"{self.username}:{self.password}"):
            if secret:
                text = text.replace(secret, "***")
        return text


def message(mail: Mail, sender: str) -> EmailMessage:
    """multipart/alternative: the plain text first, the HTML preferred (RFC 2046 §5.1.4).
    Raises ValueError for a header that would carry a line break (header injection)."""
    built = EmailMessage(policy=email.policy.SMTP)
    built["From"] = sender
    built["To"] = mail.to
    built["Subject"] = mail.subject
    built["Date"] = email.utils.formatdate(usegmt=True)
    built["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    built.set_content(mail.text)
    built.add_alternative(mail.html, subtype="html")
    return built


@dataclass(frozen=True)
class Sent:
    """How the connection went, for ``idp mail test``."""

    server: str
    tls: Literal["STARTTLS", "TLS", "no TLS"]

    def describe(self) -> str:
        how = "without TLS" if self.tls == "no TLS" else f"with {self.tls}"
        return f"via {self.server} {how}"


async def send(server: SmtpServer, sender: str, mail: Mail) -> Sent:
    """Send one mail on a connection of its own; raises SmtpError."""
    outcome: list[Refused | None] = [None]
    sent = await _send(server, sender, [mail], outcome)
    if outcome[0] is not None:
        raise SmtpError(outcome[0].reason)
    return sent


async def send_all(server: SmtpServer, sender: str, mails: Sequence[Mail]) -> list[Refused | None]:
    """Send ``mails`` over one connection; for each, None once the server took it, or why not.
    A refused recipient fails only its mail; a lost connection fails the mails not yet sent
    (never for good: the next connection may go better)."""
    outcome: list[Refused | None] = [None] * len(mails)
    try:
        await _send(server, sender, mails, outcome)
    except SmtpError as error:
        for index, result in enumerate(outcome):
            outcome[index] = result or Refused(str(error))
    return outcome


async def _send(
    server: SmtpServer, sender: str, mails: Sequence[Mail], outcome: list[Refused | None]
) -> Sent:
    """Fill ``outcome`` with each mail's refusal; raise SmtpError when the connection fails
    (every mail not yet sent marked with it)."""
    client = server.client()
    done = 0
    try:
        await client.connect()
        tls_on = client.get_transport_info("sslcontext") is not None
        sent = Sent(
            server.address,
            "TLS" if server.tls == "implicit" else ("STARTTLS" if tls_on else "no TLS"),
        )
        for done, mail in enumerate(mails):
            try:
                await client.send_message(message(mail, sender))
            except ValueError as error:  # the same mail will never be valid
                why = " ".join(str(error).split())
                outcome[done] = Refused(f"not a valid mail: {why}", permanent=True)
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as error:
                # aiosmtplib said RSET: the next mail goes on this connection.
                outcome[done] = Refused(server.explain(error), is_permanent(error))
        done = len(mails)
        # Every mail went: a failing goodbye loses nothing.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()
        return sent
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        reason = server.explain(error)
        for index in range(done, len(mails)):
            outcome[index] = outcome[index] or Refused(reason)
        raise SmtpError(reason) from None
    finally:
        client.close()
