"""The backend-for-frontend kit: sign-in, session cookies, CSRF, refresh and an API proxy for a
browser app whose JavaScript never holds a token."""

from idp_rp.bff.app import BackendForFrontend
from idp_rp.bff.config import BffConfig, BffConfigError
from idp_rp.bff.sessions import MemorySessionStore, Session, SessionStore

__all__ = [
    "BackendForFrontend",
    "BffConfig",
    "BffConfigError",
    "MemorySessionStore",
    "Session",
    "SessionStore",
]
