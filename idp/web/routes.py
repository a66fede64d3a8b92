"""The whole URL map in one place: the app's router (``idp.web.router``) dispatches every
request over these routes, behind every middleware ``idp.app.create_app`` declares."""

from __future__ import annotations

from starlette.routing import Route

from idp.demo import CALLBACK_PATH, START_PATH
from idp.web.account import (
    show_account,
    submit_email,
    submit_end_others,
    submit_end_session,
    submit_password,
    submit_profile,
    submit_revoke_app,
)
from idp.web.account_security import (
    show_security,
    submit_passkey_add,
    submit_passkey_remove,
    submit_recovery_codes,
    submit_totp_begin,
    submit_totp_confirm,
    submit_totp_remove,
)
from idp.web.account_signin import show_account_sign_in, submit_account_sign_in
from idp.web.authorize import authorize
from idp.web.consent import show_consent, submit_consent
from idp.web.cors import preflight
from idp.web.demo import demo_callback, demo_start
from idp.web.discovery import discovery
from idp.web.enrol_factor import (
    show_enrol,
    submit_enrol_begin,
    submit_enrol_confirm,
    submit_enrol_passkey,
)
from idp.web.health import healthz, readyz
from idp.web.invitation import show_invitation, submit_invitation
from idp.web.jwks import jwks
from idp.web.login import show_login, submit_login
from idp.web.logout import logout
from idp.web.mailbox import MAILBOX_PATH, demo_mailbox
from idp.web.metrics import metrics
from idp.web.passkey_login import submit_passkey_login
from idp.web.password_reset import show_forgot, show_reset, submit_forgot, submit_reset
from idp.web.register import manage, register
from idp.web.revocation import introspect_endpoint, revoke_endpoint
from idp.web.second_factor import (
    show_second_factor,
    submit_second_factor,
    submit_second_factor_passkey,
)
from idp.web.signup import show_signup, submit_signup
from idp.web.static import no_favicon, passkey_script, stylesheet
from idp.web.token import token
from idp.web.userinfo import userinfo
from idp.web.verify_email import resend_verification, show_verify_email, submit_verify_email

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
    Route("/login/passkey", submit_passkey_login, methods=["POST"]),
    Route("/consent", show_consent, methods=["GET"]),
    Route("/consent", submit_consent, methods=["POST"]),
    Route("/static/idp.css", stylesheet, methods=["GET"]),
    Route("/static/passkey.js", passkey_script, methods=["GET"]),
    Route("/favicon.ico", no_favicon, methods=["GET"]),
    Route("/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/revoke", revoke_endpoint, methods=["POST"]),
    Route("/logout", logout, methods=["GET", "POST"]),
    Route("/introspect", introspect_endpoint, methods=["POST"]),
    Route("/oauth2/register", register, methods=["POST"]),
    Route("/oauth2/register/{client_id}", manage, methods=["GET", "PUT", "DELETE"]),
    Route("/token", preflight, methods=["OPTIONS"]),
    Route("/revoke", preflight, methods=["OPTIONS"]),
    Route("/userinfo", preflight, methods=["OPTIONS"]),
    Route("/signup", show_signup, methods=["GET"]),
    Route("/signup", submit_signup, methods=["POST"]),
    Route("/verify-email", show_verify_email, methods=["GET"]),
    Route("/verify-email", submit_verify_email, methods=["POST"]),
    Route("/verify-email/resend", resend_verification, methods=["POST"]),
    Route("/account", show_account, methods=["GET"]),
    Route("/account/sign-in", show_account_sign_in, methods=["GET"]),
    Route("/account/sign-in", submit_account_sign_in, methods=["POST"]),
    Route("/account/profile", submit_profile, methods=["POST"]),
    Route("/account/email", submit_email, methods=["POST"]),
    Route("/account/password", submit_password, methods=["POST"]),
    Route("/account/sessions/end", submit_end_session, methods=["POST"]),
    Route("/account/sessions/end-others", submit_end_others, methods=["POST"]),
    Route("/account/apps/revoke", submit_revoke_app, methods=["POST"]),
    Route("/account/security", show_security, methods=["GET"]),
    Route("/account/security/totp", submit_totp_begin, methods=["POST"]),
    Route("/account/security/totp/confirm", submit_totp_confirm, methods=["POST"]),
    Route("/account/security/totp/remove", submit_totp_remove, methods=["POST"]),
    Route("/account/security/recovery-codes", submit_recovery_codes, methods=["POST"]),
    Route("/account/security/passkeys", submit_passkey_add, methods=["POST"]),
    Route("/account/security/passkeys/remove", submit_passkey_remove, methods=["POST"]),
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
    Route(MAILBOX_PATH, demo_mailbox, methods=["GET"]),
]

routes += [
    Route("/login/second-factor", show_second_factor, methods=["GET"]),
    Route("/login/second-factor", submit_second_factor, methods=["POST"]),
    Route("/login/second-factor/passkey", submit_second_factor_passkey, methods=["POST"]),
    Route("/login/enrol", show_enrol, methods=["GET"]),
    Route("/login/enrol", submit_enrol_begin, methods=["POST"]),
    Route("/login/enrol/confirm", submit_enrol_confirm, methods=["POST"]),
    Route("/login/enrol/passkey", submit_enrol_passkey, methods=["POST"]),
]
