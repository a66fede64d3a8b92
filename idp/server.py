"""``idp serve``'s uvicorn: what it believes of a client's address, the bounds on request heads,
and how its workers get their settings.

- Client address: uvicorn's ``ProxyHeadersMiddleware`` is on only with ``IDP_TRUSTED_PROXIES``,
  and is given that list explicitly, so uvicorn's own default (``FORWARDED_ALLOW_IPS``, else
  127.0.0.1) never applies. From a trusted peer it takes the rightmost ``X-Forwarded-For``
  address that is not a trusted proxy: each proxy appends the address it saw, so entries left
  of that one are whatever the client wrote. From any other peer the headers are ignored.
- Request heads: ``idp.web.head_limits``.
- WebSockets: off (``ws="none"``) with one worker or several. idp serves none, so an upgrade
  request is answered as a plain HTTP request.
- Workers (``--workers N`` > 1): ``uvicorn.run`` takes a multi-worker app only as an import
  string, whose factory would have to rebuild the settings from the environment: the resolved
  database URL and key-encryption key would have to be put there, readable in every worker's
  ``/proc/<pid>/environ``. Instead the workers' app factory carries the resolved settings and
  reaches them through the pipe multiprocessing's spawn sends a new process its arguments on
  (uvicorn's ``Config`` is pickled to each worker that way), and ``IDP_KEY_ENCRYPTION_KEY`` and
  ``IDP_DATABASE_URL`` are taken out of the environment the workers inherit. This drives
  uvicorn's ``Multiprocess`` supervisor directly, as ``uvicorn.run`` does (uvicorn 0.55). The
  workers share one listening socket; whichever accepts a connection first serves it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from idp.app import create_app
from idp.logs import configure as configure_logging
from idp.settings import Settings
from idp.web.head_limits import HeadLimitedHttpToolsProtocol

# What workers must not find in their environment: they get the settings another way.
WORKER_SECRETS = (
    "IDP_KEY_ENCRYPTION_KEY",
    "IDP_DATABASE_URL",
    "IDP_METRICS_TOKEN",
    "IDP_SMTP_URL",
)


def options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments ``idp serve`` passes, with one worker or several."""
    trusted = [str(network) for network in settings.trusted_proxies]
    return {
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
        "http": HeadLimitedHttpToolsProtocol,
        "ws": "none",  # idp serves no WebSockets
        "access_log": False,  # idp.web.observe logs every request
    }


@dataclass(frozen=True)
class WorkerApp:
    """The app factory of ``idp serve``'s workers, pickled to each with its settings."""

    settings: Settings

    def __call__(self) -> Starlette:
        configure_logging()
        return create_app(self.settings, freeze_heap=True)


def serve(
    settings: Settings, *, host: str, port: int, workers: int, log_config: dict[str, Any]
) -> None:
    """Serve until stopped; ``settings`` resolved (database URL and key-encryption key set)."""
    if workers <= 1:
        uvicorn.run(
            create_app(settings, freeze_heap=True),
            host=host,
            port=port,
            log_config=log_config,
            **options(settings),
        )
        return
    # Each worker writes its metrics to files here; a scrape of any worker sums them.
    own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    if own_metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")
    for name in WORKER_SECRETS:
        os.environ.pop(name, None)
    config = uvicorn.Config(
        WorkerApp(settings),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        **options(settings),
    )
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
