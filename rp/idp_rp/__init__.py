"""idp-rp: what a relying party needs to trust idp's access tokens."""

from idp_rp.bearer import Requirement, Verifier
from idp_rp.clock import Clock, SystemClock
from idp_rp.errors import InvalidTokenError, JwksUnavailableError
from idp_rp.introspection import IntrospectionError, Introspector
from idp_rp.jwks import JwksCache
from idp_rp.verifier import TokenVerifier, VerifiedToken

__all__ = [
    "Clock",
    "IntrospectionError",
    "Introspector",
    "InvalidTokenError",
    "JwksCache",
    "JwksUnavailableError",
    "Requirement",
    "SystemClock",
    "TokenVerifier",
    "VerifiedToken",
    "Verifier",
]
