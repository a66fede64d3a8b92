"""``GET /demo/mailbox`` (demo mode only): every mail idp sent, newest first, so a newcomer can
try sign-up and password reset with no mail server.

Without ``IDP_SMTP_URL`` the demo's sender "delivers" by marking mail sent and keeping its bodies
(idp.mail.sender), and this page reads them from the outbox. With ``IDP_SMTP_URL`` mail goes to
that server, which drops the bodies once it took them: the page then shows only what still waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from idp.db import outbox
from idp.mail.message import MailUnsealError
from idp.web.state import AppState
from idp.web.templates import render

MAILBOX_PATH = "/demo/mailbox"
SHOWN = 100  # the newest; the janitor deletes sent mail after its retention anyway
# An http(s) link, without the punctuation that ends the sentence around it.
_LINK = re.compile(r"https?://[^\s<>\"']*[^\s<>\"'.,;:!?)\]]")


@dataclass(frozen=True)
class Part:
    text: str
    link: bool  # shown as an anchor to itself (only http and https links are)


@dataclass(frozen=True)
class ShownMail:
    to: str
    subject: str
    queued_at: datetime
    sent: bool
    body: list[Part]


def linked(text: str) -> list[Part]:
    """``text`` cut into plain parts and links; the template escapes both."""
    parts, start = [], 0
    for match in _LINK.finditer(text):
        parts += [Part(text[start : match.start()], False), Part(match.group(0), True)]
        start = match.end()
    return [*parts, Part(text[start:], False)]


async def demo_mailbox(request: Request[AppState]) -> Response:
    state = request.state
    seal = state["mailing"].outbox.seal
    mails = []
    for row in await outbox.with_bodies(state["pool"], SHOWN):
        try:
            mail = seal.unseal(row.recipient, row.template, row.sealed)
        except MailUnsealError:
            continue  # sealed under another key-encryption key: nothing to show
        sent = row.sent_at is not None
        mails.append(ShownMail(mail.to, mail.subject, row.created_at, sent, linked(mail.text)))
    smtp = state["settings"].smtp_url is not None
    return render(request, "mailbox.html", mails=mails, smtp=smtp)
