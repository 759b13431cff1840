"""Scale: ingest, featurize and train on Cu data of growing size, with the peak memory of training.

    python benchmarks/scale.py [--quick] [--sizes 1000,10000] [--epochs 2] [--workdir DIR]

For each size N the benchmark makes its own data with ``pesnet generate cu-fcc --scale N/720``
(the recipe's 720 configurations times the scale: bulk MD, strains, vacancy, slab; 31-36 atoms
each, EMT labels), then runs the pesnet commands as child processes, as a user would:
``pesnet ingest`` (configurations/s), ``pesnet featurize --cutoff 5`` (the quick start's
descriptor: 21 ACSF features, ``--derivative-dtype`` derivatives, default float32; atoms/s and
file bytes per atom) and a fit of
the quick start's settings (5 members, 32-32 tanh, batch 4, force weight 0.1) for ``--epochs``
epochs with pesnet's default memory budget: :func:`pesnet.training.trainer.train_potential` in a
child process that reports each epoch's seconds (training pass + validation). Peak memory is the
child's own maximum resident set size from the kernel (``os.wait4``: the rusage of that one
child; ``RUSAGE_CHILDREN`` would give the largest of all children so far, featurize included).
``--also-streamed`` fits the smallest size a second time with the budget at 0 (streamed) to show
that the streamed fit's memory does not grow with N. Sizes above ``--max-generate`` are made by
ingesting the largest generated file several times (same cost per atom, no hour of EMT MD).
Generated files are kept in ``--workdir`` (default: a temporary directory) and reused.

``--also-compiled`` featurizes each size a second time with ``--engine compiled`` (the Numba
loop; its file is deleted, training uses the default engine's).

The last line is JSON: ``ingest_configs_per_s``, ``featurize_atoms_per_s`` (and with
``--also-compiled`` ``featurize_compiled_atoms_per_s``) and ``features_bytes_per_atom``
(largest size), ``train_peak_rss_mb_<N>`` and ``train_epoch_s_<N>``
(best epoch) per size, ``read_ms_random_batch_<N>`` and ``read_ms_sequential_batch_<N>``
(reading one batch of the fit's plan, i.e. four random configurations, vs four neighbours:
whether the order of reads matters on the features file's chunks), ``memory_budget_mb``,
``load_1min``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CONFIGS = 720  # cu-fcc at --scale 1
SETTINGS = dict(hidden=[32, 32], n_members=5, batch_size=4, learning_rate=5e-3,
                force_weight=0.1, checkpoint_every=0)

#: the child that trains: prints one JSON line with each epoch's seconds and the set-up time
TRAIN_CHILD = """
import json, sys, time
started = time.perf_counter()
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import train_potential
from pesnet.potential.io import save_model
features, model, epochs, budget, settings = sys.argv[1:6]
settings = TrainSettings.from_dict({**json.loads(settings), "epochs": int(epochs),
                                    "patience": 1000})
class Clock:
    def on_train_begin(self, **kw):
        self.begin = time.perf_counter()
result = train_potential(features, settings, callbacks=[clock := Clock()],
                         memory_budget_mb=None if budget == "none" else float(budget))
save_model(result.potential, model)
print(json.dumps({"epoch_s": [h.seconds for h in result.history],
                  "setup_s": clock.begin - started,
                  "total_s": time.perf_counter() - started}))
"""


def child(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS MB of that process, stdout). A failure exits."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(map(str, cmd[:3]))} failed:\n{err.read()}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def read_costs(features, train, n_batches: int = 200, rounds: int = 3) -> tuple[float, float]:
    """ms to read one training batch (4 configurations, derivatives, no strain) of the fit's
    plan (random configurations, ascending within the batch) and one of 4 neighbouring
    configurations: the best of ``rounds`` interleaved rounds of ``n_batches`` each."""
    import numpy as np

    from pesnet.training.data import plan_batches

    plan = plan_batches(train, SETTINGS["batch_size"], 0).configs[:n_batches]
    seq = [np.arange(k, k + 4) for k in range(0, 4 * len(plan), 4) if k + 4 <= len(features)]
    best = {"random": np.inf, "sequential": np.inf}
    for _ in range(rounds):
        for name, batches in (("random", plan), ("sequential", seq)):
            started = time.perf_counter()
            for config in batches:
                features.read_batch(config, derivatives=True, strain=False)
            best[name] = min(best[name], 1e3 * (time.perf_counter() - started) / len(batches))
    return best["random"], best["sequential"]


def make_data(n: int, work: Path, max_generate: int, env: dict) -> tuple[list[Path], float]:
    """Input files holding ~n configurations (generated, or the largest generated file
    repeated) and the seconds generating took (0 when reused)."""
    pesnet = [sys.executable, "-m", "pesnet.cli.main"]
    made = min(n, max_generate)
    path = work / f"cu_{made}.extxyz"
    seconds = 0.0
    if not path.exists():
        seconds, _, _ = child([*pesnet, "generate", "cu-fcc", "--scale",
                               f"{made / RECIPE_CONFIGS:.6g}", "-o", str(path)], env)
    return [path] * max(1, math.ceil(n / made)), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="sizes 100 and 300, one epoch (CI: under a minute)")
    parser.add_argument("--sizes", help="comma-separated configuration counts "
                        "(default 1000,10000)")
    parser.add_argument("--epochs", type=int, help="epochs per fit (default 2; quick 1)")
    parser.add_argument("--max-generate", type=int, default=10_000,
                        help="largest size generated; larger sizes repeat it (default 10000)")
    parser.add_argument("--also-streamed", action="store_true",
                        help="fit the smallest size a second time, streamed")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: temporary)")
    parser.add_argument("--also-compiled", action="store_true",
                        help="featurize each size a second time with --engine compiled (Numba)")
    parser.add_argument("--derivative-dtype", choices=("float16", "float32"), default="float32",
                        help="storage type of the features' derivatives (default float32)")
    args = parser.parse_args(argv)
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [100, 300] if args.quick else [1000, 10_000])
    epochs = args.epochs or (1 if args.quick else 2)

    from pesnet.training.batch_stream import DEFAULT_MEMORY_BUDGET_MB

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="pesnet-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    pesnet = [sys.executable, "-m", "pesnet.cli.main"]
    rows, headline = [], {}
    runs = [(n, "auto") for n in sizes]
    if args.also_streamed:
        runs.insert(1, (sizes[0], "streamed"))
    try:
        for n, mode in runs:
            tag = f"{n}" if mode == "auto" else f"{n}s"
            dataset, features = work / f"cu_{tag}.h5", work / f"features_{tag}.h5"
            inputs, gen_s = make_data(n, work, args.max_generate, env)
            for path in (dataset, features):
                path.unlink(missing_ok=True)
            ingest_s, _, _ = child([*pesnet, "ingest", *map(str, inputs), "-o", str(dataset),
                                    "--quiet"], env)
            featurize_s, _, _ = child([*pesnet, "featurize", str(dataset), "-o", str(features),
                                       "--cutoff", "5", "--derivative-dtype",
                                       args.derivative_dtype, "--quiet"], env)
            compiled_s = None
            if args.also_compiled:
                other = work / f"features_{tag}_compiled.h5"
                other.unlink(missing_ok=True)
                compiled_s, _, _ = child([*pesnet, "featurize", str(dataset), "-o", str(other),
                                          "--cutoff", "5", "--derivative-dtype",
                                          args.derivative_dtype, "--engine", "compiled",
                                          "--quiet"], env)
                other.unlink()
            import h5py

            with h5py.File(features, "r") as f:
                n_configs, n_atoms = len(f["offsets"]) - 1, int(f["offsets"][-1])
            budget = "0" if mode == "streamed" else str(DEFAULT_MEMORY_BUDGET_MB)
            _, rss_mb, out = child([sys.executable, "-c", TRAIN_CHILD, str(features),
                                    str(work / f"model_{tag}.h5"), str(epochs), budget,
                                    json.dumps(SETTINGS)], env)
            fit = json.loads(out.strip().splitlines()[-1])
            from pesnet.training.batch_stream import fits_in_memory
            from pesnet.training.data import open_training_inputs

            ff, _, split, _ = open_training_inputs(features)
            with ff:
                held = mode == "auto" and fits_in_memory(ff, (split.train, split.validation))
                read_random, read_sequential = read_costs(ff, split.train)
            row = dict(n=n_configs, atoms=n_atoms, gen_s=gen_s, ingest=n_configs / ingest_s,
                       featurize=n_atoms / featurize_s,
                       compiled=None if compiled_s is None else n_atoms / compiled_s,
                       bytes_atom=features.stat().st_size / n_atoms,
                       mode="held" if held else "streamed", setup_s=fit["setup_s"],
                       epoch_s=min(fit["epoch_s"]), rss_mb=rss_mb,
                       read_random=read_random, read_sequential=read_sequential)
            rows.append(row)
            print(f"  N={n_configs} ({row['mode']}): epoch {row['epoch_s']:.1f} s, "
                  f"peak RSS {rss_mb:.0f} MB", flush=True)
            if mode == "auto":
                headline[f"train_peak_rss_mb_{n}"] = round(rss_mb, 1)
                headline[f"train_epoch_s_{n}"] = round(row["epoch_s"], 2)
                headline[f"read_ms_random_batch_{n}"] = round(read_random, 2)
                headline[f"read_ms_sequential_batch_{n}"] = round(read_sequential, 2)
            else:
                headline[f"train_peak_rss_mb_{n}_streamed"] = round(rss_mb, 1)
                headline[f"train_epoch_s_{n}_streamed"] = round(row["epoch_s"], 2)
            for path in (dataset, features, work / f"model_{tag}.h5"):
                path.unlink(missing_ok=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nCu EMT (cu-fcc), ACSF 5 Å (21 features, {args.derivative_dtype} derivatives), "
          f"5 members 32-32, batch 4, {epochs} epoch(s); memory budget {DEFAULT_MEMORY_BUDGET_MB:.0f} MB")
    print(f"{'configs':>8} {'atoms':>9} {'ingest/s':>9} {'atoms/s':>8} {'B/atom':>7} "
          f"{'mode':>9} {'setup s':>8} {'epoch s':>8} {'µs/atom':>8} {'peak MB':>8} "
          f"{'read ms':>8} {'seq ms':>7}")
    if rows[0]["compiled"] is not None:
        print("featurize with --engine compiled: " + ", ".join(
            f"{r['n']} configs {r['compiled']:.0f} atoms/s" for r in rows if r["compiled"]))
    for r in rows:
        print(f"{r['n']:>8} {r['atoms']:>9} {r['ingest']:>9.0f} {r['featurize']:>8.0f} "
              f"{r['bytes_atom']:>7.0f} {r['mode']:>9} {r['setup_s']:>8.1f} "
              f"{r['epoch_s']:>8.2f} {1e6 * r['epoch_s'] / r['atoms']:>8.1f} "
              f"{r['rss_mb']:>8.0f} {r['read_random']:>8.2f} {r['read_sequential']:>7.2f}")
    largest = max(rows, key=lambda r: r["n"])
    headline = {"ingest_configs_per_s": round(largest["ingest"], 1),
                "featurize_atoms_per_s": round(largest["featurize"], 1),
                **({"featurize_compiled_atoms_per_s": round(largest["compiled"], 1)}
                   if largest["compiled"] is not None else {}),
                "features_bytes_per_atom": round(largest["bytes_atom"], 1),
                "derivative_dtype": args.derivative_dtype,
                **headline, "memory_budget_mb": DEFAULT_MEMORY_BUDGET_MB,
                "load_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
