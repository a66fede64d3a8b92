"""idp-rp: what a relying party needs to trust idp's access tokens."""

from idp_rp.clock import Clock, SystemClock
from idp_rp.errors import InvalidTokenError
from idp_rp.jwks import JwksCache
from idp_rp.verifier import TokenVerifier, VerifiedToken

__all__ = [
    "Clock",
    "InvalidTokenError",
    "JwksCache",
    "SystemClock",
    "TokenVerifier",
    "VerifiedToken",
]
