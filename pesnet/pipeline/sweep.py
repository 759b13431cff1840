"""Hyperparameter sweeps on a Dask cluster: one pipeline spec, a grid of training settings,
one fit per grid point on the workers, one MLflow child run per point.

>>> grid = parse_grid(["train.learning_rate=1e-3,5e-3", "model.hidden=[16],[32,32]"])
>>> result = run_sweep(load_spec("pipelines/quickstart.toml"), grid, compute)  # 4 points

The dataset is ingested and featurized once, into the sweep's run directory
(``runs/NAME-sweep/``, featurization on the cluster too, skipped when up to date); grid keys
may therefore come from the ``[model]``, ``[ensemble]`` and ``[train]`` tables only. Every
point is one task: a worker fits the point's whole ensemble (vectorised, as in one process)
and evaluates it on the spec's evaluation split; the client writes ``point-NNN/model.h5``,
``history.json`` and ``metrics.json`` as the points finish and logs each to MLflow: a parent
run (``pesnet.role = sweep``) in the pipeline's experiment, a child run per point with the
point's full parameters, its learning curves, metrics and model file. Workers read the
features and dataset at the same absolute path (a shared filesystem across machines).
A failing point is reported and the others go on.
"""

from __future__ import annotations

import itertools
import json
import time
import tomllib
import uuid
from pathlib import Path
from typing import NamedTuple

from pesnet.distributed.cluster import raise_cluster_error
from pesnet.distributed.executor import DaskExecutor
from pesnet.errors import InputError, PesnetError
from pesnet.fileio import atomic_output
from pesnet.pipeline.engine import Context, StepState, execute, run_dir_lock
from pesnet.tracking.recorder import Recorder
from pesnet.tracking.session import ROLE_TAG
from pesnet.tracking.store import resolve_tracking_uri

#: Spec tables a grid may change (the others would change the shared features).
SWEEPABLE = ("model", "ensemble", "train")
SWEEP_FILE = "sweep.json"


# -- the grid ---------------------------------------------------------------------------------
def _split_values(text: str) -> list[str]:
    """Split ``v1,v2`` at commas outside brackets and quotes."""
    values, depth, quote, start = [], 0, None, 0
    for k, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:k])
            start = k + 1
    values.append(text[start:])
    return [v.strip() for v in values]


def _value(text: str):
    """A TOML value (``1e-3``, ``[32, 32]``, ``true``, ``"relu"``), else the bare text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_grid(items) -> dict[str, list]:
    """``["train.learning_rate=1e-3,5e-3", ...]`` → ``{"train.learning_rate": [0.001, 0.005]}``
    (values parsed as TOML; bare words are strings)."""
    grid = {}
    for item in items:
        key, sep, values = str(item).partition("=")
        key = key.strip()
        table, dot, name = key.partition(".")
        if not sep or not dot or not name or not values.strip():
            raise InputError(f"--grid {item!r}: expected TABLE.KEY=V1,V2,... "
                             f"(e.g. train.learning_rate=1e-3,5e-3)")
        if table not in SWEEPABLE:
            raise InputError(f"--grid {key}: only [{'], ['.join(SWEEPABLE)}] keys can be swept "
                             f"(the features are shared by every point)")
        if key in grid:
            raise InputError(f"--grid {key} is given twice")
        parsed = [_value(v) for v in _split_values(values)]
        if any(v == "" for v in parsed):
            raise InputError(f"--grid {item!r}: empty value")
        grid[key] = parsed
    if not grid:
        raise InputError("nothing to sweep: give at least one --grid TABLE.KEY=V1,V2")
    return grid


def grid_points(grid: dict) -> list[dict]:
    """Every combination, the last key varying fastest: [{key: value, ...}, ...]."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def describe_point(point: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in point.items())


def point_pipeline(pipeline, point: dict):
    """The pipeline with ``point``'s values in its spec, validated (one-line errors)."""
    from pydantic import ValidationError

    from pesnet.pipeline.spec import Pipeline, PipelineSpec, spec_error_message

    table = tomllib.loads(pipeline.text)
    table.setdefault("name", pipeline.path.stem)
    for key, value in point.items():
        section, _, name = key.partition(".")
        table.setdefault(section, {})[name] = value
    try:
        spec = PipelineSpec.model_validate(table)
    except ValidationError as error:
        raise InputError(f"--grid point ({describe_point(point)}): "
                         + spec_error_message(pipeline.path, error)) from None
    return Pipeline(spec, pipeline.path, pipeline.text)


# -- the worker's task ------------------------------------------------------------------------
def train_point(features_path: str, dataset_path: str, settings: dict, split: str):
    """Fit one grid point's ensemble and evaluate it on ``split``: (model file bytes,
    history, metrics, seconds on the worker)."""
    from pesnet.distributed.train import potential_to_bytes
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    started = time.perf_counter()
    result = train_potential(features_path, TrainSettings.from_dict(settings), dataset_path)
    indices = None if split == "all" else getattr(result.split, split)
    if indices is not None and len(indices) == 0:
        raise InputError(f"the {split} split is empty: nothing to evaluate")
    evaluation = evaluate_potential(result.potential, dataset_path, indices, progress=False)
    return (potential_to_bytes(result.potential), result.history, evaluation.metrics,
            time.perf_counter() - started)


# -- the sweep --------------------------------------------------------------------------------
class PointResult(NamedTuple):
    """One grid point: its index and values, and what came of it (``error`` if it failed;
    ``seconds`` of fitting and evaluating on the worker)."""

    index: int
    point: dict
    metrics: dict | None
    epochs: int | None
    seconds: float | None
    run_id: str | None
    error: str | None

    @property
    def name(self) -> str:
        return f"point-{self.index:03d}"


class SweepResult(NamedTuple):
    run_dir: Path
    split: str
    points: list
    run_id: str | None
    tracking_error: str | None

    @property
    def ok(self) -> bool:
        return all(p.error is None for p in self.points) and self.tracking_error is None

    def best(self) -> PointResult | None:
        """The point with the lowest force MAE (energy MAE without forces)."""
        done = [p for p in self.points if p.metrics]
        key = "force_mae" if any("force_mae" in p.metrics for p in done) \
            else "energy_mae_per_atom"
        done = [p for p in done if key in p.metrics]
        return min(done, key=lambda p: p.metrics[key]) if done else None


def _prepare_features(pipeline, points_pipelines, run_dir: Path, cluster, progress, out,
                      shards: bool = False):
    """Ingest and featurize once (skipped when up to date), on the cluster (written as shards
    with ``shards``), by the step engine."""
    from pesnet.pipeline.spec import Pipeline
    from pesnet.pipeline.steps import Featurize, Ingest

    # derivatives if any point trains on forces
    forces = next((p for p in points_pipelines if p.spec.train_settings().force_weight > 0),
                  None)
    spec = (forces or pipeline).spec
    ctx = Context(Pipeline(spec, pipeline.path, pipeline.text), run_dir, StepState(run_dir),
                  None, progress, executor=DaskExecutor(cluster=cluster, shards=shards))

    def report(k, n, outcome, error) -> None:
        if outcome.status == "up to date":
            print(f"{outcome.name:.<12} up to date", file=out, flush=True)
        elif outcome.status == "ran":
            print(f"{outcome.name:.<12} {outcome.summary} ({outcome.seconds:.1f} s)", file=out,
                  flush=True)

    done = execute(ctx, (Ingest(), Featurize()), report=report)
    if done.failure is not None:
        raise done.failure
    return run_dir / "features.h5", run_dir / "dataset.h5"


def _recorder(uri, pipeline, grid, points, pipelines, err) -> Recorder:
    """The sweep's run (``pesnet.role = sweep``) and a child run per point, opened now."""
    recorder = Recorder(uri, pipeline.name,
                        {**pipeline.flat_params(), "sweep.grid": json.dumps(grid),
                         "sweep.points": str(len(points))},
                        {ROLE_TAG: "sweep", "pesnet.pipeline": pipeline.name,
                         "mlflow.runName": f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"},
                        pipeline.spec.description, command="pesnet sweep", err=err)
    recorder.open()
    for k, (point, spec) in enumerate(zip(points, pipelines)):
        recorder.child(f"point-{k:03d}", spec.flat_params(),
                       {ROLE_TAG: "sweep-point", "pesnet.sweep.point": describe_point(point)})
    return recorder


def _record_point(recorder: Recorder, k: int, history, metrics, split, files, error=None):
    """Point ``k``'s curves, metrics and files in its run, closed (FAILED with ``error``);
    returns the run's id (None: not tracked)."""
    child = recorder.children.get(f"point-{k:03d}")
    if child is None:
        return None
    if error is not None:
        child.end("FAILED", error)
        return child.run_id

    def log():
        child.log_epochs(history)
        child.log_metrics(metrics, prefix=f"{split}_")
        for path in files:
            child.log_artifact(path)
        child.end("FINISHED")
        return True

    if recorder.attempt(log) is None:
        child.end("FAILED", recorder.error)
    return child.run_id


def _close_sweep_run(recorder: Recorder, result: SweepResult, table_path: Path) -> None:
    """The best point's metrics and name, the table; every run closed."""
    best = result.best()
    if best is not None:
        recorder.log_metrics(best.metrics, prefix=f"best_{result.split}_")
        recorder.set_tags({"pesnet.sweep.best": best.name,
                           "pesnet.sweep.best_point": describe_point(best.point)})
    recorder.log_artifact(table_path)
    failed = [p for p in result.points if p.error]
    message = f"{len(failed)} of {len(result.points)} points failed" if failed else None
    recorder.close("FAILED" if failed or recorder.error else "FINISHED",
                   message or recorder.error, unfinished="the sweep stopped first")


def run_sweep(pipeline, grid: dict, compute, run_dir=None, tracking: bool = True,
              tracking_uri: str | None = None, progress: bool = True, out=None,
              err=None) -> SweepResult:
    """Fit every point of ``grid`` (see :func:`parse_grid`) of ``pipeline`` on the cluster of
    ``compute`` (a :class:`~pesnet.pipeline.spec.ComputeSpec`); see the module doc."""
    import sys

    from pesnet.distributed.cluster import open_cluster

    out, err = out or sys.stdout, err or sys.stderr
    points = grid_points(grid)
    pipelines = [point_pipeline(pipeline, p) for p in points]
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / f"{pipeline.name}-sweep"
    split = pipeline.spec.evaluate.split
    with run_dir_lock(run_dir), open_cluster(compute.scheduler, compute.workers,
                                              compute.threads_per_worker,
                                              compute.retries) as cluster:
        print(f"pesnet sweep {pipeline.name}: {len(points)} points on {cluster.describe()}",
              file=out, flush=True)
        files = _prepare_features(pipeline, pipelines, run_dir, cluster, progress, out,
                                  compute.shards)
        uri = resolve_tracking_uri(tracking_uri) if tracking else None
        recorder = _recorder(uri, pipeline, grid, points, pipelines, err)
        futures = _submit(cluster, pipelines, *files, split)
        try:
            results = [_collect(future, futures[future], points, run_dir, split, recorder,
                                out) for future in cluster.as_completed(list(futures))]
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (pesnet.cli.main.Terminated)
            recorder.close("KILLED", str(error) or "interrupted")
            raise
        finally:
            cluster.client.cancel([f for f in futures if not f.done()])
    results.sort(key=lambda p: p.index)
    sweep = SweepResult(run_dir, split, results, None, None)
    table = run_dir / SWEEP_FILE
    with atomic_output(table, suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps({"pipeline": pipeline.name, "grid": grid, "split": split,
                                   "points": [p._asdict() for p in results]}, indent=1,
                                  default=str))
    _close_sweep_run(recorder, sweep, table)
    return sweep._replace(run_id=recorder.run_id, tracking_error=recorder.error)


def _submit(cluster, pipelines, features: Path, dataset: Path, split: str) -> dict:
    """One :func:`train_point` task per point: {future: point index}."""
    token = uuid.uuid4().hex[:12]
    return {cluster.client.submit(train_point, str(features.resolve()), str(dataset.resolve()),
                                  spec.spec.train_settings().to_dict(), split,
                                  key=f"pesnet-sweep-{token}-point-{k}",
                                  retries=cluster.retries, pure=False): k
            for k, spec in enumerate(pipelines)}


def _collect(future, k: int, points, run_dir: Path, split: str, recorder: Recorder,
             out) -> PointResult:
    """Point ``k``'s finished task: its files in ``point-NNN/``, its run, its line."""
    from pesnet.training.records import history_to_json

    try:
        try:
            model, history, metrics, seconds = future.result()
        except Exception as error:
            raise_cluster_error(f"point {k}", error)
    except PesnetError as error:
        _record_point(recorder, k, None, None, split, (), str(error))
        print(f"point-{k:03d} FAILED: {error}", file=out, flush=True)
        return PointResult(k, points[k], None, None, None, None, str(error))
    point_dir = run_dir / f"point-{k:03d}"
    point_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(point_dir / "model.h5", suffix=".h5.tmp") as tmp:
        tmp.write_bytes(model)  # the model file the worker wrote into memory
    files = [point_dir / "model.h5"]
    for name, payload in (("history.json", history_to_json(history)),
                          ("metrics.json", {"split": split, "metrics": metrics})):
        with atomic_output(point_dir / name, suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps(payload, indent=1))
        files.append(point_dir / name)
    run_id = _record_point(recorder, k, history, metrics, split, files)
    print(f"point-{k:03d} ({describe_point(points[k])}): {_scores(metrics)}", file=out,
          flush=True)
    return PointResult(k, points[k], metrics, len(history), seconds, run_id, None)


def _scores(metrics: dict) -> str:
    text = f"E MAE {1e3 * metrics['energy_mae_per_atom']:.2f} meV/atom"
    if "force_mae" in metrics:
        text += f", F MAE {1e3 * metrics['force_mae']:.1f} meV/Å"
    return text


def format_table(result: SweepResult) -> str:
    """The points as a text table, best first marked with ``*``."""
    best = result.best()
    rows = [("", "point", "values", "epochs", "E MAE meV/atom", "F MAE meV/Å", "fit s")]
    for p in result.points:
        m = p.metrics or {}
        rows.append(("*" if best is not None and p.index == best.index else "", p.name,
                     describe_point(p.point),
                     "-" if p.epochs is None else str(p.epochs),
                     f"{1e3 * m['energy_mae_per_atom']:.2f}" if "energy_mae_per_atom" in m
                     else ("failed" if p.error else "-"),
                     f"{1e3 * m['force_mae']:.1f}" if "force_mae" in m else "-",
                     "-" if p.seconds is None else f"{p.seconds:.1f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)
