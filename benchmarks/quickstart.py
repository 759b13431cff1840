"""What the README's quick start costs, step by step: installation, then `pesnet run
pipelines/quickstart.toml` (ingest → featurize → train → evaluate → log → register).

    python benchmarks/quickstart.py [--quick] [--install]

Runs the shipped quick-start spec in a scratch run directory and MLflow store (a fresh store:
its first use creates the tables, as on a fresh clone) and reads each step's time from the
command's own step lines. ``--install`` also times the first half of the README's command,
``python3 -m venv`` and ``pip install -e .`` into a scratch environment (network and pip's
cache decide that part). ``--quick`` trains 5 epochs instead of the spec's 100 (well under a
minute). The load average is printed beside the times: on a shared machine, compare runs of
similar load. The last line is JSON: ``quickstart_total_s``, ``<step>_s`` per step,
``install_s`` (with ``--install``), ``load_1min``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP_LINE = re.compile(r"\[\d/\d\] (\w+) \.+ .*\((\d+(?:\.\d+)?) s\)\s*$")


def time_install(scratch: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(scratch / "venv")], check=True)
    subprocess.run([str(scratch / "venv" / "bin" / "pip"), "install", "-q", "-e", str(ROOT)],
                   check=True)
    return time.perf_counter() - started


def time_run(scratch: Path, quick: bool) -> tuple[float, dict, str]:
    spec = ROOT / "pipelines" / "quickstart.toml"
    if quick:
        text = spec.read_text().replace("epochs = 100", "epochs = 5")
        spec = scratch / "quickstart.toml"
        spec.write_text(text.replace('"../data/', f'"{ROOT}/data/'))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pesnet.cli.main", "run", str(spec),
                           "--run-dir", str(scratch / "run")], env=env, capture_output=True,
                          text=True)
    total = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"quickstart failed:\n{done.stdout}\n{done.stderr}")
    steps = {m.group(1): float(m.group(2)) for m in map(STEP_LINE.match,
                                                         done.stdout.splitlines()) if m}
    return total, steps, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 training epochs")
    parser.add_argument("--install", action="store_true", help="also time the installation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pesnet-quickstart-") as scratch:
        scratch = Path(scratch)
        install = time_install(scratch) if args.install else None
        total, steps, _ = time_run(scratch, args.quick)
    load = os.getloadavg()[0]
    print(f"{'part':<12} {'seconds':>8}")
    if install is not None:
        print(f"{'install':<12} {install:>8.1f}")
    for name, seconds in steps.items():
        print(f"{name:<12} {seconds:>8.1f}")
    print(f"{'other':<12} {total - sum(steps.values()):>8.1f}   (start-up, imports, register, "
          "summary)")
    print(f"{'run total':<12} {total:>8.1f}   ({'5 epochs' if args.quick else '100 epochs'}; "
          f"load average {load:.2f} on {os.cpu_count()} cores)")
    result = {"quickstart_total_s": round(total, 2), "load_1min": round(load, 2),
              **{f"{k}_s": v for k, v in steps.items()}}
    if install is not None:
        result["install_s"] = round(install, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
