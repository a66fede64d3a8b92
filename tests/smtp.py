"""A real SMTP server in the test process (aiosmtpd, on its own thread), keeping every mail it
receives: the tests read the mail idp sends from here."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import free_port


class _Keeper:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._sink.received(message, list(envelope.rcpt_tos))
        return "250 OK"


class SmtpSink:
    """``start()``/``stop()`` on one port, so a test can take the server away and bring it back."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self, message: EmailMessage, recipients: list[str]) -> None:
        with self._lock:
            self.messages.append(message)
            self.recipients.append(recipients)

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
