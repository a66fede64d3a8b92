"""``scripts/bench --verifier`` (bench/verifier.py) runs and writes its record: the three
contenders, the two ratios with their targets. A tiny run; its figures mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_verifier_bench_reports_idp_rp_beside_its_ceiling_and_pyjwt(tmp_path: Path) -> None:
    out = tmp_path / "verifier.md"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--verifier"]
    command += ["--iterations", "20", "--rounds", "2", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = out.read_text()
    rows = [line for line in report.splitlines() if line.startswith("| (")]
    assert [row[:5] for row in rows] == ["| (a)", "| (b)", "| (c)", "| (a)", "| (a)"]
    assert "idp_rp `TokenVerifier.verify`" in rows[0]
    assert "cryptography" in rows[1]
    assert "PyJWT" in rows[2]
    assert rows[3].startswith("| (a) / (b) |")
    assert "≥ 0.8" in rows[3]
    assert rows[4].startswith("| (a) / (c) |")
    assert "≥ 1.0" in rows[4]
    assert "none during the measured runs" in report
