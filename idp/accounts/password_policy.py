"""What a new password must be (NIST SP 800-63B §3.1.1.2): long enough, not too long to hash,
not one of the most common passwords, and not the account's own address. No composition rules
(no "one digit, one symbol"): §3.1.1.2 says verifiers SHALL NOT impose them.

The common passwords are the 30,000 of zxcvbn's ``passwords`` frequency list (zxcvbn-python, the
port of Dropbox's estimator, compiled from leaked password corpora and shipped in the package):
a list maintained by others, installed with idp, read offline."""

from __future__ import annotations

from functools import lru_cache

from zxcvbn.frequency_lists import FREQUENCY_LISTS

# §3.1.1.2: verifiers SHOULD permit at least 64 characters; argon2 hashes any length, but a
# bound keeps one request from costing more than the others.
MAX_LENGTH = 256
TOO_SHORT = "Use at least {minimum} characters."
TOO_LONG = f"Use at most {MAX_LENGTH} characters."
TOO_COMMON = "This password is one of the most common ones; choose another."
HAS_EMAIL = "The password must not contain your email address's name."


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, *, email: str, min_length: int) -> list[str]:
    """Every rule the password breaks, one clear message each; empty when it is fine. Length
    counts Unicode code points (§3.1.1.2: each character counts as one)."""
    found = []
    if len(password) < min_length:
        found.append(TOO_SHORT.format(minimum=min_length))
    if len(password) > MAX_LENGTH:
        found.append(TOO_LONG)
    folded = password.casefold()
    if folded in common_passwords():
        found.append(TOO_COMMON)
    local = email.partition("@")[0].casefold()
    if len(local) >= 3 and local in folded:
        found.append(HAS_EMAIL)
    return found
