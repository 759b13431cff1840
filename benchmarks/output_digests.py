"""Digests of everything a shipped pipeline produces, to prove a refactor changed no number.

Runs each shipped pipeline spec (with ``--no-tracking``) from a source tree — this checkout by
default, or another one (``--tree``, e.g. a ``git worktree`` of an older commit) — and hashes,
with SHA-256, every array of the run directory's HDF5 files (dataset, features, model; each
dataset's raw bytes, dtype and shape), the test metrics (``metrics.json``) and the training
history without its wall-clock fields. ``ethanol_xtb`` trains with fewer epochs and members
(``--epochs``, ``--members``) so the proof takes minutes, not a quarter of an hour.

    python benchmarks/output_digests.py -o head.json
    python benchmarks/output_digests.py --tree /path/to/old/checkout -o base.json
    python benchmarks/output_digests.py --compare base.json head.json

The table lists each output with its digest (and, with ``--compare``, whether it matches); the
last line is JSON: ``outputs`` compared, ``identical`` (how many match), ``load_1min``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: history fields that measure wall-clock time, not the fit
TIMING_KEYS = {"seconds", "elapsed", "time", "wall_time"}


def h5_digests(path: Path) -> dict:
    """``{"<file>:<dataset path>": sha256 of dtype, shape and bytes}`` of every HDF5 dataset."""
    import h5py
    import numpy as np

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            data = np.ascontiguousarray(obj[()])
            digest = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
            # variable-length strings come back as objects: hash their values, not pointers
            digest.update(repr(data.tolist()).encode() if data.dtype == object
                          else data.tobytes())
            out[f"{path.name}:{name}"] = digest.hexdigest()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def json_digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def spec_copy(spec: Path, work: Path, epochs: int | None, members: int | None) -> Path:
    """The spec with absolute dataset paths (and fewer epochs/members), written into ``work``."""
    text = tomllib.loads(spec.read_text())
    text["dataset"]["files"] = [str((spec.parent / f).resolve())
                                for f in text["dataset"]["files"]]
    if epochs:
        text.setdefault("train", {})["epochs"] = epochs
    if members:
        text.setdefault("ensemble", {})["members"] = members
    text.pop("register", None)
    out = work / spec.name
    out.write_text(_toml(text))
    return out


def _toml(table: dict, prefix: str = "") -> str:
    """A minimal TOML writer for the flat spec tables (scalars and lists of scalars)."""
    scalars = [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for k, v in table.items():
        if isinstance(v, dict):
            lines.append(_toml(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(lines) + "\n"


def run_pipeline(tree: Path, spec: Path, run_dir: Path) -> dict:
    """Run ``spec`` with the code of ``tree``; digests of its outputs."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-m", "pesnet.cli.main", "run", str(spec),
                           "--run-dir", str(run_dir), "--no-tracking", "--quiet"],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{spec.name} failed in {tree}:\n{done.stdout}{done.stderr}")
    digests = {}
    for h5 in sorted(run_dir.glob("*.h5")):
        digests.update(h5_digests(h5))
    digests["metrics.json"] = json_digest(json.loads((run_dir / "metrics.json").read_text()))
    history = json.loads((run_dir / "history.json").read_text())
    digests["history.json (no timings)"] = json_digest(without_timing(history))
    return digests


def measure(tree: Path, epochs: int, members: int) -> dict:
    runs = {"quickstart": (None, None), "ethanol_xtb": (epochs, members)}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (n_epochs, n_members) in runs.items():
            work = Path(tmp) / name
            work.mkdir()
            spec = spec_copy(ROOT / "pipelines" / f"{name}.toml", work, n_epochs, n_members)
            for key, digest in run_pipeline(tree, spec, work / "run").items():
                out[f"{name}/{key}"] = digest
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree to run")
    parser.add_argument("-o", "--output", type=Path, help="write the digests here (JSON)")
    parser.add_argument("--epochs", type=int, default=20, help="ethanol_xtb epochs")
    parser.add_argument("--members", type=int, default=3, help="ethanol_xtb members")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="compare two digest files instead of running")
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
    else:
        a = b = measure(args.tree.resolve(), args.epochs, args.members)
        if args.output:
            args.output.write_text(json.dumps(a, indent=1, sort_keys=True))
    keys = sorted(set(a) | set(b))
    same = 0
    for key in keys:
        match = a.get(key) == b.get(key)
        same += match
        mark = "" if not args.compare else ("  identical" if match else "  DIFFERS")
        print(f"{key:60s} {(b.get(key) or a.get(key) or '-')[:16]}{mark}")
    print(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    print(json.dumps({"outputs": len(keys), "identical": same,
                      "load_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
