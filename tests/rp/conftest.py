"""The server's tests use idp-rp from this repository's ``rp/`` source, not an installed copy.

idp-rp is a separate distribution (rp/pyproject.toml) that the server does not depend on, so it
is not installed into the server's virtual environment; putting ``rp/`` on ``sys.path`` here lets
these tests exercise exactly the source that scripts/test-rp installs and tests on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

RP_SOURCE = str(Path(__file__).resolve().parents[2] / "rp")
if RP_SOURCE not in sys.path:
    sys.path.insert(0, RP_SOURCE)
