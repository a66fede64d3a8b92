"""The servers of one comparison, started and ready, in the order they run in a round (idp, the
baseline, the peer, the ceiling), and what the record says of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import wrk
from baseline import IdpCode, this_checkout
from config import Config, NotMeasured, log
from providers import Provider, peer_unavailable, start_ceiling, start_idp, start_peer
from scenarios import (
    CLOSE_NOTE,
    Scenario,
    ceiling_job,
    describe_ceiling,
    provider_job,
    refresh_families,
)
from servers import CpuMeter, Lab
from versions import common_versions, node_version, oidc_provider_version, postgres_version


@dataclass(frozen=True)
class Contender:
    """A server the scenarios load (a column of the table), and the job of a scenario on it."""

    name: str
    meter: CpuMeter
    job: Callable[[Scenario, int], wrk.Job]  # (scenario, round from 0)


@dataclass
class Lineup:
    contenders: list[Contender] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ceilings: dict[str, str] = field(default_factory=dict)  # scenario -> what its ceiling does


def provider_contender(provider: Provider, config: Config) -> Contender:
    meter = CpuMeter(provider.server, provider.data)
    return Contender(provider.name, meter, partial(provider_job, provider, config=config))


def start_lineup(
    lab: Lab,
    config: Config,
    scenarios: list[Scenario],
    with_peer: bool,
    baseline: tuple[str, IdpCode, list[str]] | None,
) -> Lineup:
    """idp, then the baseline (``(ref, code, notes)``), the peer and the ceiling, as the chosen
    scenarios need them; each with tokens enough for every round."""
    families, spares = refresh_families(scenarios, config), config.rounds + 1
    browsers = config.round_trip_concurrency
    code = this_checkout()
    code.check(lab.env)
    lineup = Lineup(versions=common_versions(code.commit))
    if any(s.close for s in scenarios):
        lineup.notes.append(CLOSE_NOTE)
    idp = start_idp(lab, code, "idp", families, spares, browsers)
    assert idp.data is not None
    lineup.versions["PostgreSQL"] = postgres_version(idp.data)
    lineup.contenders.append(provider_contender(idp, config))

    if baseline is not None:
        ref, old, notes = baseline
        old.check(lab.env)
        started = start_idp(lab, old, "baseline", families, spares, browsers)
        lineup.contenders.append(provider_contender(started, config))
        named = old.commit if old.commit.startswith(ref) else f"{ref} ({old.commit})"
        lineup.versions["baseline"] = named
        lineup.notes += notes

    reason = None if with_peer else "--no-peer"
    if reason is None and any(s.peer for s in scenarios):
        reason = peer_unavailable()
        if reason is None:
            lineup.versions["node"] = node_version()
            lineup.versions["oidc-provider"] = oidc_provider_version()
            try:
                peer = start_peer(lab, families, spares)
            except NotMeasured as error:
                reason = str(error)
            else:
                lineup.contenders.append(provider_contender(peer, config))
    if reason is not None:
        lineup.notes.append(f"peer not measured: {reason}")
        log(f"peer not measured: {reason}")

    if any(s.ceiling for s in scenarios):
        ceiling = start_ceiling(lab, idp)
        job = partial(ceiling_job, ceiling, config=config)
        meter = CpuMeter(ceiling.server, idp.data)  # it works on idp's database
        lineup.contenders.append(Contender("ceiling", meter, job))
        lineup.ceilings = {s.name: describe_ceiling(ceiling, s) for s in scenarios if s.ceiling}
    return lineup
