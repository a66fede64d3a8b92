"""The servers the scenarios load: idp (this checkout's, and a baseline's) and the peer
(node-oidc-provider, bench/peer/), each started with its clients, user and tokens, as an operator
and apps would set them up; and the ceiling app (bench/ceiling.py) beside idp."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import roundtrip
from baseline import IdpCode
from config import BENCH, BIN, EMAIL, PEER_DIR, REDIRECT, RESOURCE, WORKERS, NotMeasured, log
from servers import Lab, Server, free_port, postgres_socket_dir
from wrk import form_headers


def basic(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Provider:
    """idp or the peer: where its endpoints are and the credentials its scenarios use."""

    name: str
    server: Server
    base: str
    machine: tuple[str, str]  # client_credentials client (id, secret)
    machine_form: str
    api: tuple[str, str]  # the resource server that introspects
    web: tuple[str, str]  # the code-flow client
    data: Path | None  # IDP_DATA_DIR: PostgreSQL counts towards its CPU
    paths: dict[str, str] = field(default_factory=dict)
    refresh_file: Path | None = None  # two families a connection a round
    spares: list[str] = field(default_factory=list)  # refresh tokens for the refresh checks
    introspectable: Callable[[], str] | None = None
    code_flow: Callable[[], str] | None = None  # an access token of the code flow, for userinfo
    password: str = ""  # the user's, for the round trip; "" for the peer, which has no sign-in

    def url(self, endpoint: str) -> str:
        if endpoint not in self.paths:
            raise NotMeasured(f"no {endpoint} endpoint in {self.name}'s discovery")
        return self.base + self.paths[endpoint]

    def discover(self) -> None:
        document = httpx.get(self.base + "/.well-known/openid-configuration", timeout=10).json()
        self.paths = {"discovery": "/.well-known/openid-configuration"}
        for endpoint, key in [
            ("jwks", "jwks_uri"),
            ("token", "token_endpoint"),
            ("introspect", "introspection_endpoint"),
            ("userinfo", "userinfo_endpoint"),
        ]:
            if key in document:
                self.paths[endpoint] = urlsplit(document[key]).path

    def spare(self) -> str:
        if not self.spares:
            raise NotMeasured("no refresh token left")
        return self.spares.pop()

    def bearer(self) -> str:
        """A fresh access token of the code flow, which userinfo accepts."""
        assert self.code_flow is not None
        return self.code_flow()

    def live_token(self) -> str:
        """A fresh access token that this provider's introspection accepts."""
        if self.introspectable is not None:
            return self.introspectable()
        return client_credentials(self.url("token"), self.machine, self.machine_form)

    def save_refresh_tokens(self, tokens: list[str], families: int, work: Path) -> None:
        self.refresh_file = work / f"{self.name}-refresh-tokens"
        self.refresh_file.write_text("\n".join(tokens[:families]) + "\n")
        self.spares = tokens[families:]


def client_credentials(url: str, client: tuple[str, str], form: str) -> str:
    answer = httpx.post(url, content=form, headers=form_headers(basic(*client)), timeout=10)
    if answer.status_code != httpx.codes.OK:
        raise NotMeasured(f"client_credentials answered {answer.status_code}: {answer.text[:200]}")
    token: str = answer.json()["access_token"]
    return token


def start_idp(
    lab: Lab,
    code: IdpCode,
    name: str,
    families: int,
    spares: int,
    browsers: int,
    issuer_host: str = "127.0.0.1",
) -> Provider:
    """``idp serve --workers 2`` of ``code`` on a fresh embedded PostgreSQL, with the bench's
    clients, ``browsers`` users and ``families`` + ``spares`` refresh tokens; its issuer names
    ``issuer_host`` (``localhost`` for passkeys), while the bench reaches it on 127.0.0.1."""
    data = lab.data_dir()
    port = free_port()
    issuer = {"IDP_ISSUER": f"http://{issuer_host}:{port}"}
    env = code.env(lab.env | {"IDP_DATA_DIR": str(data)} | issuer)
    log(f"starting {name} on 127.0.0.1:{port} (workers {WORKERS}, IDP_DATA_DIR {data})")
    argv = code.argv("serve", "--host", "127.0.0.1", "--port", str(port))
    server = Server(name, [*argv, "--workers", str(WORKERS)], env, lab.work, cwd=code.root)
    base = f"http://127.0.0.1:{port}"
    lab.start(server, base + "/readyz")
    cli = IdpCli(name, code, env)
    machine, api, web = cli.add_clients()
    password = secrets.token_urlsafe(16)
    for n in range(browsers):  # one person a browser
        email = roundtrip.browser_email(EMAIL, n)
        cli.run("users", "add", email, "--password-stdin", stdin=password + "\n")
    idp = Provider(
        name,
        server,
        base,
        machine=machine,
        machine_form="grant_type=client_credentials",
        api=api,
        web=web,
        data=data,
        password=password,
    )
    idp.discover()
    idp.introspectable = partial(idp_introspectable, idp)
    idp.code_flow = partial(idp_code_flow, base, web, password)
    count = families + spares if families else 0
    log(f"{name}: {count} code flows for refresh tokens")
    tokens = asyncio.run(idp_refresh_tokens(base, web, password, count))
    idp.save_refresh_tokens(tokens, families, lab.work)
    return idp


@dataclass(frozen=True)
class IdpCli:
    """The ``idp`` command of one server's code and database, as an operator runs it."""

    name: str
    code: IdpCode
    env: dict[str, str]

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            self.code.argv(*args),
            env=self.env,
            cwd=self.code.root,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"bench: {self.name}: idp {' '.join(args[:2])}: {done.stderr}")
        return done.stdout

    def client(self, *args: str) -> tuple[str, str]:
        created = json.loads(self.run("clients", "add", *args, "--json"))
        return created["client_id"], created["client_secret"]

    def add_clients(self) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
        """The machine client, the resource server that introspects its tokens, and the code-flow
        client. Access tokens live an hour, so that a long run's bearer stays valid."""
        machine = self.client(
            "bench",
            *("--grant-type", "client_credentials", "--scope", "read"),
            *("--audience", RESOURCE, "--access-token-ttl", "1h"),
        )
        api = self.client(
            "bench-api", *("--grant-type", "client_credentials", "--introspect-audience", RESOURCE)
        )
        web = self.client(
            "bench-web",
            *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
            *("--redirect-uri", REDIRECT, "--scope", "openid email", "--first-party"),
            *("--access-token-ttl", "1h"),
        )
        return machine, api, web


def idp_introspectable(idp: Provider) -> str:
    """A client_credentials token of ``bench`` (aud https://api.example), which the resource
    server ``bench-api`` introspects; it must be active, or the scenario measures nothing."""
    token = client_credentials(idp.url("token"), idp.machine, idp.machine_form)
    answer = httpx.post(idp.url("introspect"), data={"token": token}, auth=idp.api, timeout=10)
    if answer.status_code != httpx.codes.OK or answer.json().get("active") is not True:
        raise NotMeasured(f"{idp.name} does not introspect a live token as active: {answer.text}")
    return token


def idp_code_flow(base: str, web: tuple[str, str], password: str) -> str:
    """An access token of idp's code flow (a sign-in through bench/roundtrip.py)."""

    async def flow() -> str:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            issued = await roundtrip.round_trip(client, *web, EMAIL, password)
        return issued["access_token"]

    return asyncio.run(flow())


async def idp_refresh_tokens(
    base: str, web: tuple[str, str], password: str, count: int, concurrency: int = 4
) -> list[str]:
    """Sign in ``count`` times through the code flow (bench/roundtrip.py), a few at a time."""
    queue = list(range(count))
    tokens: list[str] = []

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while queue:
                queue.pop()
                issued = await roundtrip.round_trip(client, *web, EMAIL, password)
                tokens.append(issued["refresh_token"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens


def peer_unavailable() -> str | None:
    """Why the peer cannot run here, if it cannot; installs its packages when missing."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEER_DIR / "server.js").is_file():
        return "bench/peer/server.js is missing"
    installed = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not installed.is_file():
        log("installing the peer's packages (npm install in bench/peer)")
        done = subprocess.run(
            ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund"],
            cwd=PEER_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return f"npm install failed: {done.stderr.strip()[-300:]}"
    return None


def start_peer(lab: Lab, families: int, spares: int) -> Provider:
    clients = json.loads((PEER_DIR / "clients.json").read_text())

    def credentials(name: str) -> tuple[str, str]:
        return clients[name]["client_id"], clients[name]["client_secret"]

    port = free_port()
    log(f"starting the peer on 127.0.0.1:{port} (workers {WORKERS})")
    env = lab.env | {"PEER_PORT": str(port), "PEER_WORKERS": str(WORKERS)}
    server = Server("peer", ["node", "server.js"], env, lab.work, cwd=PEER_DIR)
    base = f"http://127.0.0.1:{port}"
    lab.start(server, base + "/readyz")
    tokens_py = [sys.executable, str(PEER_DIR / "tokens.py")]

    def introspectable() -> str:
        # An opaque client_credentials token: oidc-provider does not introspect JWTs.
        done = subprocess.run(
            [*tokens_py, "--access-token", base], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise NotMeasured(f"tokens.py --access-token failed: {done.stderr.strip()[:200]}")
        return done.stdout.strip()

    peer = Provider(
        "peer",
        server,
        base,
        machine=credentials("bench"),
        machine_form=urlencode(
            {"grant_type": "client_credentials", "resource": RESOURCE, "scope": "read"}
        ),
        api=credentials("bench-api"),
        web=credentials("bench-web"),
        data=None,
        introspectable=introspectable,
        code_flow=partial(peer_code_flow, base, credentials("bench-web")),
    )
    peer.discover()
    count = families + spares if families else 0
    log(f"peer: {count} code flows for refresh tokens")
    done = subprocess.run(
        [*tokens_py, base, str(count)], capture_output=True, text=True, check=False
    )
    tokens = done.stdout.split()
    if done.returncode != 0 or len(tokens) != count:
        raise NotMeasured(f"tokens.py failed: {done.stderr.strip()[-300:]}")
    peer.save_refresh_tokens(tokens, families, lab.work)
    return peer


def peer_code_flow(base: str, web: tuple[str, str]) -> str:
    """An access token of the peer's code flow that its userinfo accepts: asked for without a
    resource indicator (bench/peer/tokens.py asks for https://api.example, whose JWT access
    tokens oidc-provider's userinfo refuses). The peer signs in and consents by itself."""
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": web[0],
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": roundtrip.s256(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=base, timeout=30) as client:
        url = f"{base}/authorize?{urlencode(query)}"
        for _ in range(10):
            answer = client.get(url)
            if not answer.is_redirect:
                raise NotMeasured(f"the peer's code flow stopped at {answer.status_code}")
            url = urljoin(url, answer.headers["location"])
            if url.startswith(REDIRECT):
                break
        code = parse_qs(urlsplit(url).query).get("code")
        if not code:
            raise NotMeasured(f"the peer's code flow ended without a code: {url[:200]}")
        form = {
            "grant_type": "authorization_code",
            "code": code[0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        answer = client.post("/token", data=form, auth=web)
    if answer.status_code != httpx.codes.OK:
        raise NotMeasured(f"the peer's code exchange answered {answer.status_code}")
    token: str = answer.json()["access_token"]
    return token


@dataclass
class Ceiling:
    """bench/ceiling.py: the least a Starlette app under uvicorn does for each scenario."""

    server: Server
    base: str
    sizes: dict[str, int]  # idp's answers' sizes: jwks, discovery
    idp: Provider


def start_ceiling(lab: Lab, idp: Provider) -> Ceiling:
    """The ceiling app, sized like idp's answers, introspecting and writing against idp's own
    database and keys."""
    assert idp.data is not None
    sizes = {
        name: len(httpx.get(idp.url(name), timeout=10).content) for name in ("jwks", "discovery")
    }
    port = free_port()
    log(f"starting the ceiling app on 127.0.0.1:{port} (workers {WORKERS})")
    argv = [str(BIN / "uvicorn"), "ceiling:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    argv += ["--no-access-log", "--log-level", "warning"]
    env = lab.env | {
        "BENCH_CEILING_SIZES": f"{sizes['jwks']},{sizes['discovery']}",
        "BENCH_DATABASE_URL": f"postgresql://postgres:@/postgres?host={postgres_socket_dir(idp.data)}",
        "BENCH_JWKS_URL": idp.url("jwks"),
    }
    base = f"http://127.0.0.1:{port}"
    server = lab.start(Server("ceiling", argv, env, lab.work), base + "/ceiling")
    return Ceiling(server, base, sizes, idp)
