"""The scale benchmark's quick mode, as CI runs it: every stage of benchmarks/scale.py on a
100-configuration generated set (streamed and held, featurized by both ACSF engines), ending
with its JSON line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_scale_quick_measures_every_stage(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--quick", "--sizes", "100",
         "--also-streamed", "--also-compiled", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("ingest_configs_per_s", "featurize_atoms_per_s",
                "featurize_compiled_atoms_per_s", "train_epoch_s_100",
                "train_epoch_s_100_streamed", "load_1min"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    # ~8.3 kB per atom for Cu at 5 Å (21 features, float32 derivatives)
    assert 5_000 < figures["features_bytes_per_atom"] < 12_000
    # the streamed fit holds a few batches, the held one the whole set: never more
    assert 50 < figures["train_peak_rss_mb_100_streamed"] <= figures["train_peak_rss_mb_100"]
