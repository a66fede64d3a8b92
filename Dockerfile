# idp for production: `idp serve` on 0.0.0.0:8000 against the PostgreSQL named by
# IDP_DATABASE_URL (see docker-compose.yml and idp.env.example). No embedded database, no --demo.
#
# The steps are those of scripts/serve (tests/test_compose.py holds them equal): a venv in
# $ROOT/.venv, an up-to-date pip, the project root installed into it with its dependencies, then
# `cd $ROOT && $VENV/bin/idp serve`. The one difference: scripts/_venv.sh installs with `-e` so
# that a checkout's edits take effect; an image never edits its source, so a regular install of
# the same project gives the same packages and the same `idp` command.
FROM python:3.11-slim

ARG ROOT=/app
ARG VENV=/app/.venv
# Build-time only (an ARG is not kept in the image): no pip cache in the layer.
ARG PIP_NO_CACHE_DIR=1

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The user idp runs as: not root, and unable to write to its own code.
RUN groupadd --system --gid 10001 idp \
    && useradd --system --uid 10001 --gid idp --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin idp

WORKDIR $ROOT
COPY . $ROOT
RUN python3.11 -m venv "$VENV" \
    && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
    && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ROOT"

USER 10001:10001
EXPOSE 8000

# Ready = the database answers and the signing keys are loaded (slim has no curl; urlopen raises
# on a 503, so the check fails). /healthz is the liveness probe, where one is wanted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]

# `docker compose run --rm idp users list` etc. run the other idp commands with the same image.
ENTRYPOINT ["/app/.venv/bin/idp"]
# Two uvicorn workers per container: idp's default is os.cpu_count(), which in a container is
# the host's core count, not the container's share. Scale out with more replicas instead.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
