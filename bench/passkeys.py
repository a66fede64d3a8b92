"""The passkeys record: passkey sign-ins/s beside password sign-ins/s, in one run, on one
server, and what checking an authenticator app's code costs a request.

    scripts/bench --passkeys [--duration 10s] [--out FILE]

idp runs as ``idp serve --workers 2`` on a fresh embedded PostgreSQL with its issuer on
``localhost`` (an RP ID is never an IP address). Both sign-ins are whole authorization-code
round trips by the same number of browsers (bench/roundtrip.py), one person each: the password
ones bound by argon2id, the passkey ones (each browser's software authenticator, real ES256,
signs the login page's challenge) by nothing but the requests. Writes bench/results/passkeys.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import timeit
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyotp
from baseline import this_checkout
from config import BENCH, RESULTS, Config, log
from providers import start_idp
from servers import Lab

from idp.mfa.totp import TotpSeal, matching_step

TARGET = 10.0  # passkey sign-ins at least this many times the password ones (the issue's)
TOTP_RUNS = 20_000


def round_trips(passkeys_on: str | None, base: str, web: tuple[str, str], password: str,
                config: Config) -> tuple[float, str]:  # fmt: skip
    """Round trips/s and the p99 line of bench/roundtrip.py (with passkeys when given the
    issuer)."""
    command = [sys.executable, str(BENCH / "roundtrip.py")]
    command += ["--passkeys", passkeys_on] if passkeys_on else []
    command += [base, *web, "bench@example.com", password, config.duration.removesuffix("s")]
    command += [str(config.round_trip_concurrency)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: roundtrip.py failed:\n{done.stdout}{done.stderr}")
    output = done.stdout
    log(output.strip().replace("\n", " · "))
    rate = re.search(r"Requests/sec:\s*([\d.]+)", output)
    p99 = re.search(r"99%\s*([\d.]+ms)", output)
    assert rate is not None, output
    assert p99 is not None, output
    return float(rate.group(1)), p99.group(1)


def totp_cost() -> tuple[float, float]:
    """Microseconds per request of checking a code: unsealing the secret, and matching the code
    against the three steps of ±1 drift (the one conditional UPDATE aside)."""
    seal = TotpSeal(os.urandom(32))
    secret = pyotp.random_base32()
    user = uuid.uuid4()
    sealed = seal.seal(user, secret)
    now = datetime.now(UTC)
    wrong = "000000" if pyotp.TOTP(secret).at(now) != "000000" else "111111"
    unseal = timeit.timeit(lambda: seal.unseal(user, sealed), number=TOTP_RUNS)
    match = timeit.timeit(lambda: matching_step(secret, wrong, now), number=TOTP_RUNS)
    return unseal / TOTP_RUNS * 1e6, match / TOTP_RUNS * 1e6


def main(config: Config, out: Path | None) -> int:
    lab = Lab()
    try:
        idp = start_idp(
            lab, this_checkout(), "idp", 0, 1, config.round_trip_concurrency, "localhost"
        )
        assert idp.password is not None
        issuer = idp.base.replace("127.0.0.1", "localhost")
        log("password sign-ins (round trips)")
        by_password, password_p99 = round_trips(None, idp.base, idp.web, idp.password, config)
        log("passkey sign-ins (round trips)")
        by_passkey, passkey_p99 = round_trips(issuer, idp.base, idp.web, idp.password, config)
    finally:
        lab.close()
    unseal, match = totp_cost()
    ratio = by_passkey / max(by_password, 0.001)
    verdict = "met" if ratio >= TARGET else "NOT met"
    lines = [
        f"# Passkeys benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`idp serve --workers 2`, embedded PostgreSQL, {config.duration} a measurement, "
        f"{config.round_trip_concurrency} browsers (one person each), argon2id at RFC 9106's "
        "low-memory profile; each sign-in a whole code round trip (/authorize, the login page, "
        "the sign-in, /token).",
        "",
        "| measurement | result | p99 |",
        "|---|---|---|",
        f"| sign-ins with a password | {by_password:.1f}/s | {password_p99} |",
        f"| sign-ins with a passkey (software authenticator, ES256) | {by_passkey:.1f}/s | "
        f"{passkey_p99} |",
        f"| passkey / password | {ratio:.1f} times | "
        f"target at least {TARGET:.0f} times: {verdict} |",
        f"| checking an authenticator app's code: unseal the secret | {unseal:.1f} µs | |",
        "| checking an authenticator app's code: match one step either side "
        "(a wrong code, the worst case) "
        f"| {match:.1f} µs | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (out or RESULTS / "passkeys.md").write_text(text)
    return 0 if ratio >= TARGET else 1
