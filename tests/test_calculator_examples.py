"""The calculator examples run end to end (with a small trained model, in a scratch directory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script, outputs", [
    ("relax_with_uncertainty.py", ["relaxed.extxyz"]),
    ("md_with_uncertainty_stop.py", ["md.traj", "uncertainty.log"]),
])
def test_example_runs(script, outputs, cu_model, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), str(cu_model)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in outputs:   # under runs/ (git-ignored), never the working directory itself
        assert (tmp_path / "runs" / "examples" / name).is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"runs"}
