"""The embedded PostgreSQL of the zero-set-up mode (the ``pgserver`` wheel)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

PGDATA_NAME = "pg"


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data directory owner-only (0700) if it is missing; return its absolute path."""
    data_dir = data_dir.expanduser().resolve()
    if not data_dir.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # another process may race us
        os.chmod(data_dir, 0o700)  # mkdir's mode is filtered by the umask
    return data_dir


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the PostgreSQL server in ``data_dir/pg``; return its URL.

    pgserver keeps a list of the processes using a data directory, so a second idp process on the
    same directory connects to the running server instead of starting another one, and the server
    stops when the last of them exits.

    Run as root, pgserver executes postgres as a ``pgserver`` system user and must give it
    traversal (``o+x``) through ``data_dir``; the directory stays unlistable to others.
    """
    data_dir = ensure_data_dir(data_dir)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (common on servers); pgserver then
        # keeps its lock file under /tmp, which is what we want anyway.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode pays for it

        server = pgserver.get_server(data_dir / PGDATA_NAME, cleanup_mode="stop")
    if os.geteuid() == 0:
        os.chmod(data_dir, 0o711)  # noqa: S103 - traverse only, see docstring
    return str(server.get_uri())
