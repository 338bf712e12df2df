"""The soak script still runs and passes its own checks, briefly (benchmarks/README.md, "Soak").

10 s of wrk after a 2 s warm-up against the demo app under uvicorn: no socket errors, no
non-2xx, the app's request counter matches wrk's count (within the documented in-flight
allowance) and RSS stays within 5 MB of the end of the warm-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ROOT, require_binary

SOAK = ROOT / "benchmarks" / "soak.py"


def test_a_short_soak_passes(tmp_path: Path) -> None:
    require_binary("wrk")
    results = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, str(SOAK), "--seconds", "10", "--warmup", "2",
                           "--json", str(results)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "soak: OK" in done.stdout
    report = json.loads(results.read_text())
    completed = sum(run["completed"] for run in report["wrk"])
    assert completed > 0 and report["failures"] == []
    assert 0 <= sum(report["counted"].values()) - completed <= report["connections"]
