"""The whole URL map in one place: the app's router (``idp.web.router``) dispatches every
request over these routes, behind every middleware ``idp.app.create_app`` declares."""

from __future__ import annotations

from starlette.routing import Route

from idp.demo import CALLBACK_PATH, START_PATH
from idp.web.authorize import authorize
from idp.web.consent import show_consent, submit_consent
from idp.web.cors import preflight
from idp.web.demo import demo_callback, demo_start
from idp.web.discovery import discovery
from idp.web.health import healthz, readyz
from idp.web.invitation import show_invitation, submit_invitation
from idp.web.jwks import jwks
from idp.web.login import show_login, submit_login
from idp.web.logout import logout
from idp.web.metrics import metrics
from idp.web.password_reset import show_forgot, show_reset, submit_forgot, submit_reset
from idp.web.revocation import introspect_endpoint, revoke_endpoint
from idp.web.static import no_favicon, stylesheet
from idp.web.token import token
from idp.web.userinfo import userinfo

routes = [
    Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/token", token, methods=["POST"]),
    Route("/authorize", authorize, methods=["GET"]),
    Route("/login", show_login, methods=["GET"]),
    Route("/login", submit_login, methods=["POST"]),
    Route("/consent", show_consent, methods=["GET"]),
    Route("/consent", submit_consent, methods=["POST"]),
    Route("/static/idp.css", stylesheet, methods=["GET"]),
    Route("/favicon.ico", no_favicon, methods=["GET"]),
    Route("/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/revoke", revoke_endpoint, methods=["POST"]),
    Route("/logout", logout, methods=["GET", "POST"]),
    Route("/introspect", introspect_endpoint, methods=["POST"]),
    Route("/token", preflight, methods=["OPTIONS"]),
    Route("/revoke", preflight, methods=["OPTIONS"]),
    Route("/userinfo", preflight, methods=["OPTIONS"]),
    Route("/forgot-password", show_forgot, methods=["GET"]),
    Route("/forgot-password", submit_forgot, methods=["POST"]),
    Route("/reset-password", show_reset, methods=["GET"]),
    Route("/reset-password", submit_reset, methods=["POST"]),
    Route("/accept-invitation", show_invitation, methods=["GET"]),
    Route("/accept-invitation", submit_invitation, methods=["POST"]),
]

# Only with idp serve --demo.
demo_routes = [
    Route(START_PATH, demo_start, methods=["GET"]),
    Route(CALLBACK_PATH, demo_callback, methods=["GET"]),
]
