"""The production shape (docker-compose.yml, Dockerfile, idp.env.example, .dockerignore), checked
by reading the files: Docker does not run on our machines.

The Dockerfile must do what scripts/serve does (scripts/_venv.sh's install, then
``$VENV/bin/idp serve``), less ``--demo`` and ``-e``; these tests compare the two.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from idp.settings import Settings
from idp.web.head_limits import MAX_HEAD_BYTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "idp.env.example"
ENV_FILE = "idp.env"
PGDATA = "/var/lib/postgresql/data"
# What the containers need from the env file: idp's issuer and key-encryption key, and the
# database password for PostgreSQL (POSTGRES_PASSWORD) and for idp's driver (PGPASSWORD).
SECRETS = ("IDP_KEY_ENCRYPTION_KEY", "POSTGRES_PASSWORD", "PGPASSWORD")
NEEDED = ("IDP_ISSUER", *SECRETS)
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what a container must listen on)


# -- reading the files ----------------------------------------------------------------------
def mapping(value: object, where: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"{where} should be a mapping, is {value!r}"
    return value


@cache
def compose() -> dict[str, Any]:
    return mapping(yaml.safe_load(COMPOSE.read_text()), "docker-compose.yml")


def service(name: str) -> dict[str, Any]:
    services = mapping(compose().get("services"), "services")
    return mapping(services.get(name), f"services.{name}")


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment:``, as a mapping whichever way it is written."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(str(item).partition("=")[::2] for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def env_files(svc: dict[str, Any]) -> list[str]:
    raw = svc.get("env_file") or []
    entries = raw if isinstance(raw, list) else [raw]
    return [str(entry["path"] if isinstance(entry, dict) else entry) for entry in entries]


def healthcheck_command(svc: dict[str, Any]) -> list[str]:
    test = mapping(svc.get("healthcheck"), "healthcheck").get("test")
    assert isinstance(test, list), test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return [str(word) for word in test[1:]]


def parse_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of an env file, in compose's format (comments, blank lines)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, equals, value = line.partition("=")
        assert equals, line
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), line
        assert key not in values, f"{key} is set twice in {path.name}"
        values[key] = value.strip()
    return values


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        words = json.loads(self.args)
        assert isinstance(words, list), f"{self.keyword} should be in exec (JSON) form"
        return [str(word) for word in words]


@cache
def dockerfile() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    parsed: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        parsed.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return tuple(parsed)


def instructions(keyword: str) -> list[Instruction]:
    return [each for each in dockerfile() if each.keyword == keyword]


def build_args() -> dict[str, str]:
    args = {}
    for each in instructions("ARG"):
        name, _, default = each.args.partition("=")
        args[name] = default
    return args


def placeholders(words: list[str], names: dict[str, str]) -> list[str]:
    """Words with each ``$NAME``/``${NAME}`` replaced by ``names[NAME]``."""

    def one(word: str) -> str:
        for name, value in names.items():
            word = word.replace("${" + name + "}", value).replace("$" + name, value)
        return word

    return [one(word) for word in words]


def docker_path_names() -> dict[str, str]:
    args = build_args()
    assert {"ROOT", "VENV"} <= set(args), "the Dockerfile should name ROOT and VENV as ARGs"
    return {"VENV": "<venv>", "ROOT": "<root>"}


def docker_literal(words: list[str]) -> list[str]:
    """Exec-form words (no variables there) with the ARG paths put back as placeholders."""
    args = build_args()
    out = []
    for word in words:
        for name in ("VENV", "ROOT"):  # VENV first: it lies under ROOT
            if word == args[name] or word.startswith(args[name] + "/"):
                word = f"<{name.lower()}>" + word[len(args[name]) :]
                break
        out.append(word)
    return out


def install_commands(commands: list[str]) -> list[str]:
    """The venv and pip commands among shell commands joined by && or ||."""
    found = []
    for command in commands:
        for part in re.split(r"&&|\|\|", command):
            if re.search(r"-m (venv|pip)\b", part):
                found.append(part.strip())
    return found


# -- docker-compose.yml ---------------------------------------------------------------------
def test_compose_has_postgres_idp_and_a_proxy() -> None:
    services = mapping(compose().get("services"), "services")
    assert {"postgres", "idp", "proxy"} <= set(services), sorted(services)


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    postgres = service("postgres")
    # postgres:18 and later keep their data under /var/lib/postgresql/MAJOR/docker instead.
    assert re.fullmatch(r"postgres:1[67](\.\d+)*(-[a-z0-9]+)?", str(postgres.get("image"))), (
        postgres.get("image")
    )
    mounts = [str(volume).split(":") for volume in postgres.get("volumes") or []]
    sources = [mount[0] for mount in mounts if len(mount) >= 2 and mount[1] == PGDATA]
    assert len(sources) == 1, f"exactly one volume on {PGDATA}: {mounts}"
    declared = mapping(compose().get("volumes"), "volumes")
    assert sources[0] in declared, f"{sources[0]} should be a named volume, not a host path"


def test_postgres_healthcheck_is_pg_isready_over_tcp() -> None:
    postgres = service("postgres")
    command = healthcheck_command(postgres)
    words = shlex.split(command[0]) if len(command) == 1 else command
    assert words[0] == "pg_isready", command
    # During initdb the image runs a server on the unix socket only: it must not pass for ready.
    assert "--host=127.0.0.1" in words or "-h" in words, command
    env = environment(postgres)
    assert f"--username={env['POSTGRES_USER']}" in words, command
    assert f"--dbname={env['POSTGRES_DB']}" in words, command


def test_idp_is_built_from_the_repo_dockerfile() -> None:
    build = service("idp").get("build")
    context, name = (build, "Dockerfile") if isinstance(build, str) else (None, None)
    if isinstance(build, dict):
        context, name = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    assert context is not None, build
    assert name is not None, build
    assert (COMPOSE.parent / str(context) / str(name)).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


def test_idp_runs_two_replicas_behind_one_address() -> None:
    idp = service("idp")
    assert mapping(idp.get("deploy"), "idp.deploy").get("replicas") == 2
    assert "container_name" not in idp, "a fixed container name allows one replica only"
    assert not idp.get("ports"), "replicas cannot share a published host port: use the proxy"
    published = {
        name for name, svc in compose()["services"].items() if mapping(svc, name).get("ports")
    }
    assert published == {"proxy"}, f"only the proxy should publish a port: {published}"


def test_idp_database_url_points_at_the_postgres_service_without_a_secret() -> None:
    url = urlsplit(environment(service("idp"))["IDP_DATABASE_URL"])
    postgres = environment(service("postgres"))
    assert url.scheme in ("postgresql", "postgres"), url
    assert url.hostname == "postgres", url
    assert url.port in (None, 5432), url
    assert url.username == postgres["POSTGRES_USER"], url
    assert url.path == "/" + postgres["POSTGRES_DB"], url
    assert url.password is None, "the password belongs in idp.env (PGPASSWORD), not here"


def test_secrets_come_from_the_env_file() -> None:
    for name in ("idp", "postgres"):
        svc = service(name)
        assert ENV_FILE in env_files(svc), f"{name} should read {ENV_FILE}"
        leaked = set(SECRETS) & set(environment(svc))
        assert not leaked, f"{name} sets {leaked} in docker-compose.yml: they belong in idp.env"


def test_compose_interpolates_nothing() -> None:
    # Compose fills ${VAR} from the shell and .env, never from env_file: a ${VAR} here would be
    # empty on `docker compose up` however idp.env sets it.
    interpolated = re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text())
    assert not interpolated, f"put {interpolated} in idp.env and read them with env_file"


def test_idp_waits_for_a_healthy_postgres() -> None:
    depends = mapping(service("idp").get("depends_on"), "idp.depends_on")
    assert mapping(depends.get("postgres"), "postgres").get("condition") == "service_healthy"


def test_idp_healthcheck_asks_readyz_on_the_served_port() -> None:
    command = " ".join(healthcheck_command(service("idp")))
    assert f"http://127.0.0.1:{served_port()}/readyz" in command, command
    interpreter = healthcheck_command(service("idp"))[0]
    assert docker_literal([interpreter]) == ["<venv>/bin/python"], interpreter


def test_every_service_restarts() -> None:
    for name, svc in mapping(compose().get("services"), "services").items():
        assert mapping(svc, name).get("restart") in ("always", "unless-stopped"), name


def caddyfile() -> str:
    proxy = service("proxy")
    targets = {str(mapping(c, "config").get("target")): c["source"] for c in proxy["configs"]}
    source = targets.get("/etc/caddy/Caddyfile")
    return str(mapping(compose()["configs"][source], "config").get("content"))


def networks_of(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A service's networks and their settings, whichever way they are written."""
    raw = svc.get("networks")
    if raw is None:
        return {"default": {}}
    if isinstance(raw, list):
        return {str(name): {} for name in raw}
    return {str(name): mapping(value or {}, str(name)) for name, value in raw.items()}


def test_the_proxy_spreads_requests_over_the_replicas() -> None:
    proxy = service("proxy")
    depends = mapping(proxy.get("depends_on"), "proxy.depends_on")
    assert "idp" in depends
    caddy = caddyfile()
    # Every replica, found through Docker's DNS, rather than whichever one a dial resolves to.
    assert re.search(rf"dynamic a idp {served_port()}\b", caddy), caddy
    assert str(served_port()) in map(str, service("idp").get("expose") or []), "expose the port"


def test_idp_believes_x_forwarded_for_from_the_proxy_alone() -> None:
    idp, proxy = service("idp"), service("proxy")
    env = environment(idp)
    # uvicorn's own variable, which idp serve overrides: set to "*", it let any client choose
    # its address, and its presence here would suggest it still counts.
    assert "FORWARDED_ALLOW_IPS" not in env
    trusted = Settings.from_env(env).trusted_proxies
    shared = set(networks_of(idp)) & set(networks_of(proxy))
    assert len(shared) == 1, f"idp and the proxy should share one network: {shared}"
    (edge,) = shared
    fixed = networks_of(proxy)[edge].get("ipv4_address")
    assert fixed, "the proxy needs a fixed address on the network it shares with idp"
    address = ip_address(str(fixed))
    assert trusted == (ip_network(address),), f"IDP_TRUSTED_PROXIES should be {address} alone"
    # The address is the proxy's alone: in the network's subnet, outside the range other
    # containers get theirs from; and no service but idp and the proxy is on that network.
    network = mapping(mapping(compose().get("networks"), "networks").get(edge), edge)
    (pool,) = mapping(network.get("ipam"), f"{edge}.ipam")["config"]
    assert address in ip_network(pool["subnet"])
    assert address not in ip_network(pool["ip_range"])
    services = mapping(compose().get("services"), "services")
    on_edge = {name for name, svc in services.items() if edge in networks_of(mapping(svc, name))}
    assert on_edge == {"idp", "proxy"}


def test_the_proxy_sets_x_forwarded_for_itself_and_bounds_request_heads_as_idp_does() -> None:
    caddy = caddyfile()
    # Without trusted_proxies of its own, Caddy drops what a client sent in X-Forwarded-For.
    assert "trusted_proxies" not in caddy
    # Server options live in the global options block, which must come first.
    assert caddy.lstrip().startswith("{"), caddy
    read_header = re.search(r"^\s*read_header\s+(\d+)s\s*$", caddy, re.MULTILINE)
    assert read_header, "the proxy should bound the time a request head may take"
    assert int(read_header.group(1)) <= Settings().head_timeout.total_seconds()
    size = re.search(r"^\s*max_header_size\s+(\d+)KiB\s*$", caddy, re.MULTILINE)
    assert size, "the proxy should bound the size of a request head"
    assert int(size.group(1)) * 1024 <= MAX_HEAD_BYTES


# -- idp.env.example ------------------------------------------------------------------------
def test_env_example_defines_what_the_containers_need_and_no_secret() -> None:
    example = parse_env_file(ENV_EXAMPLE)
    assert set(NEEDED) <= set(example), f"missing: {set(NEEDED) - set(example)}"
    for name in SECRETS:
        assert example[name] == "", f"{name} must be empty in the example: nobody may deploy it"
    assert example["PGPASSWORD"] == example["POSTGRES_PASSWORD"]


def test_the_compose_environment_is_a_valid_production_configuration() -> None:
    filled = {
        name: secrets.token_urlsafe(32) if name == "IDP_KEY_ENCRYPTION_KEY" else value
        for name, value in parse_env_file(ENV_EXAMPLE).items()
    }
    env = {**filled, **environment(service("idp"))}
    settings = Settings.from_env(env, host=ALL_INTERFACES, port=served_port())
    assert settings.database_url == env["IDP_DATABASE_URL"]
    assert settings.key_encryption_key is not None
    # Without IDP_ISSUER, idp would call itself http://0.0.0.0:8000.
    assert settings.issuer == filled["IDP_ISSUER"] != f"http://{ALL_INTERFACES}:{served_port()}"
    proxy_ports = [str(port).rsplit(":", 2) for port in service("proxy")["ports"]]
    assert str(urlsplit(settings.issuer).port) in [port[-2] for port in proxy_ports], (
        "the example issuer should be the proxy's published address"
    )


def test_every_idp_variable_named_is_a_real_setting() -> None:
    settings_source = (ROOT / "idp" / "settings.py").read_text()
    files = (COMPOSE, ENV_EXAMPLE, DOCKERFILE)
    named = {
        name for f in files for name in re.findall(r"\bIDP_[A-Z0-9_]*[A-Z0-9]\b", f.read_text())
    }
    assert {"IDP_ISSUER", "IDP_DATABASE_URL", "IDP_KEY_ENCRYPTION_KEY"} <= named
    unknown = sorted(name for name in named if f'"{name}"' not in settings_source)
    assert not unknown, f"not read by idp/settings.py: {unknown}"


def test_idp_env_is_gitignored() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ENV_FILE], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{ENV_FILE} holds the secrets: add it to .gitignore"


# -- Dockerfile -----------------------------------------------------------------------------
def served_port() -> int:
    command = cmd()
    return int(command[command.index("--port") + 1]) if "--port" in command else 8000


def cmd() -> list[str]:
    (last,) = instructions("CMD")[-1:]
    return last.exec_form()


def test_dockerfile_base_image_is_the_supported_python() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    (base,) = instructions("FROM")
    assert base.args == f"python:{requires.removeprefix('>=')}-slim", (base.args, requires)


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    users = [index for index, each in enumerate(dockerfile()) if each.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = dockerfile()[users[-1]].args
    uid = user.partition(":")[0]
    assert uid.isdigit(), f"USER {user}: a numeric uid lets the runtime tell it is not root"
    assert int(uid) != 0, user
    runs = [index for index, each in enumerate(dockerfile()) if each.keyword == "RUN"]
    assert users[-1] > max(runs), "USER should come after the install, which needs root"


def test_dockerfile_installs_the_project_as_scripts_venv_sh_does() -> None:
    script = (ROOT / "scripts" / "_venv.sh").read_text()
    assert 'VENV="$ROOT/.venv"' in script
    assert 'spec="$ROOT"' in script
    args = build_args()
    assert args["VENV"] == args["ROOT"] + "/.venv", args
    # scripts/_venv.sh runs the first of python3.11 and python3; the image has python3.11.
    assert "command -v python3.11 ||" in script
    script_names = {"VENV": "<venv>", "spec": "<root>", "python": "<python>"}
    docker_names = {**docker_path_names(), "python3.11": "<python>"}
    # The one deliberate difference: -e (editable) in a checkout, a regular install in an image.
    dropped = {"-e", ">&2"}

    def steps(commands: list[str], names: dict[str, str]) -> list[list[str]]:
        return [
            [
                names.get(word, word)  # a bare word (python3.11)
                for word in placeholders(shlex.split(command), names)
                if word not in dropped
            ]
            for command in install_commands(commands)
        ]

    from_script = steps(script.splitlines(), script_names)
    from_docker = steps([each.args for each in instructions("RUN")], docker_names)
    assert from_script[-1][-1] == "<root>", from_script  # installs the project root itself
    assert from_docker == from_script


def test_dockerfile_serves_as_scripts_serve_does_without_demo() -> None:
    serve = (ROOT / "scripts" / "serve").read_text()
    assert re.search(r"^ensure_venv$", serve, re.MULTILINE), "serve installs without extras"
    assert re.search(r'^cd "\$ROOT"$', serve, re.MULTILINE)
    (exec_line,) = [line for line in serve.splitlines() if line.startswith("exec ")]
    script = [w for w in placeholders(shlex.split(exec_line), {"VENV": "<venv>"}) if w != "exec"]
    assert script == ["<venv>/bin/idp", "serve", "--demo", "$@"], script

    (workdir,) = instructions("WORKDIR")
    assert placeholders([workdir.args], docker_path_names()) == ["<root>"], workdir
    (entrypoint,) = instructions("ENTRYPOINT")
    command = docker_literal(entrypoint.exec_form()) + cmd()
    assert command[:2] == script[:2], command
    assert "--demo" not in command, "no demo user or client in production"
    assert command[command.index("--host") + 1] == ALL_INTERFACES, command
    # idp's default is os.cpu_count(): in a container, the host's cores.
    assert int(command[command.index("--workers") + 1]) >= 1, command
    idp = service("idp")
    assert "command" not in idp, "compose should run the image's CMD"
    assert "entrypoint" not in idp, "compose should run the image's ENTRYPOINT"


def test_dockerfile_healthcheck_asks_readyz() -> None:
    (check,) = instructions("HEALTHCHECK")
    words = check.args.split("CMD", 1)[1].strip()
    command = json.loads(words)
    assert docker_literal([command[0]]) == ["<venv>/bin/python"], command
    assert f"http://127.0.0.1:{served_port()}/readyz" in " ".join(command), command


# -- .dockerignore --------------------------------------------------------------------------
@pytest.mark.parametrize("path", [".venv", ".idp", ".git", ENV_FILE])
def test_dockerignore_keeps_out_of_the_build_context(path: str) -> None:
    patterns = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert path in patterns, f"{path} would be sent to the builder (and could land in the image)"
