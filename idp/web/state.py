"""What the lifespan yields to every request (``Request[AppState]``)."""

from __future__ import annotations

from typing import TypedDict

import asyncpg

from idp.background import Background
from idp.clock import Clock
from idp.db.listener import Listener
from idp.keys.keyring import Keyring
from idp.keys.manager import KeyManager
from idp.mail.outbox import Mailing
from idp.mail.sender import MailSender
from idp.metrics import Exposition
from idp.mfa.passkeys import Passkeys
from idp.oauth.client_registry import ClientRegistry
from idp.oauth.context import TokenContext
from idp.oauth.document_clients import DocumentClients
from idp.passwords import Passwords
from idp.settings import Settings
from idp.web.security import Cookies


class AppState(TypedDict):
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    keyring: Keyring
    keys: KeyManager
    discovery_body: bytes
    clients: ClientRegistry
    client_documents: DocumentClients  # clients.find, and metadata documents (IDP_CIMD)
    listener: Listener
    passwords: Passwords
    cookies: Cookies
    token_context: TokenContext
    metrics: Exposition
    mailing: Mailing  # queue mail in a transaction (idp.mail.outbox)
    mail_sender: MailSender  # delivers the outbox; tests wake it (idp.mail.sender)
    background: Background  # work a request does not wait for (idp.background)
    passkeys: Passkeys | None  # None where passkeys cannot work (an IP-address issuer)
