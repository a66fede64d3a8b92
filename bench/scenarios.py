"""The scenario table: what each scenario sends, which servers have it, and the job that sends it
to one server in one round."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from config import BENCH, EMAIL, Config, NotMeasured
from providers import Ceiling, Provider, basic
from report import TIMES
from wrk import Check, Job, form_headers, post_form


@dataclass(frozen=True)
class Scenario:
    name: str
    sends: str = ""  # the requests of that scenario (default: its own)
    peer: bool = True  # False: the peer has no such scenario (no password sign-in)
    ceiling: bool = False
    close: bool = False  # every request asks for Connection: close, so each opens a connection

    @property
    def requests(self) -> str:
        return self.sends or self.name

    def runs_on(self, server: str) -> bool:
        """idp and the baseline have every scenario; the peer and the ceiling theirs."""
        return {"peer": self.peer, "ceiling": self.ceiling}.get(server, True)


SCENARIOS = [
    Scenario("jwks", ceiling=True),
    Scenario("discovery", ceiling=True),
    Scenario("client_credentials", ceiling=True),
    Scenario("introspection", ceiling=True),
    Scenario("userinfo"),
    Scenario("refresh_token", ceiling=True),
    Scenario("mixed"),
    Scenario("jwks_close", "jwks", ceiling=True, close=True),
    Scenario("client_credentials_close", "client_credentials", ceiling=True, close=True),
    Scenario("roundtrip", peer=False),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
CLOSE_NOTE = (
    "`*_close`: the requests of the scenario without the suffix, each with `Connection: close`, "
    "so each on a new connection, as browsers and load balancers without keep-alive make them"
)


def provider_job(provider: Provider, scenario: Scenario, round: int, config: Config) -> Job:
    """``scenario`` on idp or the peer, in round ``round`` (from 0)."""
    return _closing(scenario, _provider_requests(provider, scenario.requests, round, config))


def _provider_requests(provider: Provider, name: str, round: int, config: Config) -> Job:
    if name in ("jwks", "discovery"):
        return Job(provider.url(name), checks=[Check("GET", provider.url(name))])
    if name == "client_credentials":
        return post_form(provider.url("token"), provider.machine_form, basic(*provider.machine))
    if name == "introspection":
        form = urlencode({"token": provider.live_token()})
        return post_form(provider.url("introspect"), form, basic(*provider.api), introspection=True)
    if name == "userinfo":
        header = f"Bearer {provider.bearer()}"
        check = Check("GET", provider.url("userinfo"), {"Authorization": header})
        return Job(provider.url("userinfo"), headers=[f"Authorization: {header}"], checks=[check])
    if name == "refresh_token":
        assert provider.refresh_file is not None
        url, web = provider.url("token"), provider.web
        return refresh_job(url, provider.refresh_file, web, provider.spare(), round, config)
    if name == "mixed":
        return mixed_job(provider)
    if name == "roundtrip" and provider.password:
        return round_trip_job(provider, config)
    raise NotMeasured("no such scenario")


def refresh_job(
    url: str, tokens: Path, web: tuple[str, str], check_token: str, round: int, config: Config
) -> Job:
    """Each connection refreshes its own family (bench/refresh.lua, one wrk thread each). Every
    run, warm-up included, takes families of its own from the file, as a consumed token presented
    again would revoke its family. The check refreshes a spare family (any token, for the
    ceiling)."""
    connections = config.connections
    form = urlencode({"grant_type": "refresh_token", "refresh_token": check_token})
    return Job(
        url,
        BENCH / "refresh.lua",
        env={"BENCH_REFRESH_TOKENS": str(tokens), "BENCH_BASIC": basic(*web)},
        warmup_env={"BENCH_REFRESH_OFFSET": str(2 * round * connections)},
        run_env={"BENCH_REFRESH_OFFSET": str((2 * round + 1) * connections)},
        thread_per_connection=True,
        checks=[Check("POST", url, form_headers(basic(*web)), form)],
    )


def refresh_families(scenarios: list[Scenario], config: Config) -> int:
    """Refresh tokens each provider needs for every run of the refresh scenario."""
    if not any(scenario.requests == "refresh_token" for scenario in scenarios):
        return 0
    return 2 * config.connections * config.rounds


def mixed_job(provider: Provider) -> Job:
    bearer = provider.bearer()
    env = {
        "BENCH_JWKS_PATH": urlsplit(provider.url("jwks")).path,
        "BENCH_USERINFO_PATH": urlsplit(provider.url("userinfo")).path,
        "BENCH_BEARER": bearer,
        "BENCH_INTROSPECT_PATH": urlsplit(provider.url("introspect")).path,
        "BENCH_INTROSPECT_FORM": urlencode({"token": provider.live_token()}),
        "BENCH_INTROSPECT_BASIC": basic(*provider.api),
        "BENCH_TOKEN_PATH": urlsplit(provider.url("token")).path,
        "BENCH_TOKEN_FORM": provider.machine_form,
        "BENCH_TOKEN_BASIC": basic(*provider.machine),
    }
    checks = [
        Check("GET", provider.url("jwks")),
        Check("GET", provider.url("userinfo"), {"Authorization": f"Bearer {bearer}"}),
        Check(
            "POST",
            provider.url("introspect"),
            form_headers(env["BENCH_INTROSPECT_BASIC"]),
            env["BENCH_INTROSPECT_FORM"],
            introspection=True,
        ),
        Check(
            "POST",
            provider.url("token"),
            form_headers(env["BENCH_TOKEN_BASIC"]),
            provider.machine_form,
        ),
    ]
    return Job(provider.base + "/", BENCH / "mixed.lua", env=env, checks=checks)


def round_trip_job(idp: Provider, config: Config) -> Job:
    """A whole authorization-code round trip (authorize, login page, sign-in, token exchange) by
    ``ROUND_TRIP_CONCURRENCY`` browsers; the sign-in's argon2id (RFC 9106 low-memory profile)
    bounds it."""
    command = [sys.executable, str(BENCH / "roundtrip.py"), idp.base, *idp.web, EMAIL]
    command += [idp.password, config.duration.removesuffix("s")]
    return Job(idp.base, command=[*command, str(config.round_trip_concurrency)])


def ceiling_job(ceiling: Ceiling, scenario: Scenario, round: int, config: Config) -> Job:
    return _closing(scenario, _ceiling_requests(ceiling, scenario.requests, round, config))


def _closing(scenario: Scenario, job: Job) -> Job:
    """A ``*_close`` scenario's job: every request on a new connection."""
    if scenario.close:
        job.headers.append("Connection: close")
    return job


def _ceiling_requests(ceiling: Ceiling, name: str, round: int, config: Config) -> Job:
    if name in ceiling.sizes:
        url = f"{ceiling.base}/ceiling/{ceiling.sizes[name]}"
        return Job(url, checks=[Check("GET", url)])
    if name == "client_credentials":
        return post_form(f"{ceiling.base}/ceiling/sign", "grant_type=client_credentials", "")
    if name == "introspection":
        form = urlencode({"token": ceiling.idp.live_token()})
        return post_form(f"{ceiling.base}/ceiling/introspect", form, "")
    if name == "refresh_token":
        assert ceiling.idp.refresh_file is not None
        url = f"{ceiling.base}/ceiling/refresh"
        return refresh_job(url, ceiling.idp.refresh_file, ceiling.idp.web, "ceiling", round, config)
    raise NotMeasured("no such scenario")


def describe_ceiling(ceiling: Ceiling, scenario: Scenario) -> str:
    name = scenario.requests
    if name in ceiling.sizes:
        return f"constant pre-encoded JSON as large as idp's answer ({ceiling.sizes[name]} B)"
    return {
        "client_credentials": "sign one RS256 JWT",
        "introspection": "verify one RS256 JWT + one indexed SELECT (idp's database)",
        "refresh_token": f"sign {TIMES}2 (access and ID token, RS256) + one INSERT "
        "(idp's database)",
    }[name]
