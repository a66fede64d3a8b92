# Sourced by the scripts: make sure .venv exists and holds the project (idempotent, fast when done).
# Needs nothing but Python 3.11+, pip and gcc.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

ensure_venv() {  # ensure_venv [extras]
    local extras="${1:-}" spec="$ROOT" python stamp
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    local sum; sum="$(cksum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    stamp="$VENV/.idp-installed-${extras:-base}-$sum"
    [ -f "$stamp" ] && return 0
    # The dev install holds the base one: never reinstall (e.g. offline, during an incident).
    [ -z "$extras" ] && [ -f "$VENV/.idp-installed-dev-$sum" ] && return 0
    python="$(command -v python3.11 || command -v python3)"
    [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
    touch "$stamp"
}
