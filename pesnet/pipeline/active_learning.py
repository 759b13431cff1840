"""Active learning: grow the dataset where the ensemble disagrees, retrain, repeat.

``pesnet active-learn pipelines/NAME.toml`` first brings the pipeline up to date (``pesnet
run``; nothing is refitted when it is), then runs ``[active_learning] rounds`` rounds. A round

1. runs Langevin MD with the current ensemble from the seed structures (``seed_structures``
   files, or ``n_seeds`` configurations of the training split) at each ``temperature_K``;
2. scores every MD frame by its largest atomic force spread, max_i ‖σ_F,i‖ (the calibrated
   committee standard deviation of atom i's force vector, eV/Å), and keeps the frames above
   the threshold (``threshold``, or the ``quantile`` of the same score over the current
   training configurations); MD of a structure stops once the score exceeds
   ``stop_threshold``, or once two atoms come closer than
   :data:`~pesnet.pipeline.exploration.COLLAPSE_FRACTION` of the
   seed's shortest distance (the trajectory has left the region the model knows);
3. picks frames greedily in time order, at least ``min_spacing`` MD steps apart within a
   trajectory, at most ``max_new`` (round-robin over trajectories; see :func:`select`);
4. labels them with the reference calculator (``calculator``, default the dataset recipe's;
   any name of :mod:`pesnet.data.calculators`), writes them to ``selected.extxyz`` and a new
   ``dataset.h5``: the previous dataset's rows, unchanged, then the new ones
   (``config_type = "al_round<k>"``);
5. runs featurize → train → evaluate (→ MLflow log → register) on it with the pipeline's
   settings, in ``RUN_DIR/active-learning/round-<k>/``.

Steps 1–4 live in :mod:`pesnet.pipeline.exploration`; step 5 is the step engine
(:mod:`pesnet.pipeline.engine`) and the MLflow runs are a
:class:`~pesnet.tracking.recorder.Recorder`'s; this module runs the rounds.

A round that picks nothing ends the loop: the ensemble is confident everywhere MD went.

**Choices.** The descriptor parameters are the spec's, so every round's features are the same
functions of the structures (new elements are refused). The split is redrawn over the grown
dataset by the pipeline's own rule (``split_indices(n, fractions, seed)``) and the feature
statistics and reference energies are recomputed on its training part: one rule for every
dataset, whatever its history. The price is that the test split of round k is not the test
split of round k − 1 (it mixes old and new configurations); a fixed yardstick is what
``holdout`` files are for — they are scored after the initial fit and after every round. Each
round retrains from scratch with the pipeline's seeds (reproducible; no drift from warm starts).

**Tracking.** One parent run (tag ``pesnet.role = active-learning``) in the pipeline's
experiment, with the ``[active_learning]`` table as params and per-round metrics (``step`` =
round): ``al_n_candidates``, ``al_n_picked``, ``al_threshold``, ``al_max_std``,
``al_n_configs`` and the test and holdout metrics after retraining. Each round is a nested run
(``mlflow.parentRunId``) recorded like a pipeline run (params, curves, artefacts, pyfunc, a
registered version) plus the same ``al_*`` metrics, ``selected.extxyz`` and ``round.json``.

**Reruns.** A round whose inputs (previous model and dataset, the table) are unchanged reuses
its labelled frames and skips its up-to-date steps, so an interrupted active learning resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pesnet.errors import InputError
from pesnet.fileio import atomic_output, sha256_file
from pesnet.pipeline.engine import (
    Context,
    StepState,
    copy_spec,
    execute,
    plan,
    run_dir_lock,
)
from pesnet.pipeline.executors import executor_for
from pesnet.pipeline.exploration import (
    append_configurations,
    explore,
    label,
    quantile_threshold,
    reference_calculator_name,
    seed_structures,
    select,
)
from pesnet.pipeline.spec import ActiveLearningSpec, Pipeline, flatten, resolve_path
from pesnet.tracking.recorder import Recorder
from pesnet.tracking.session import ROLE_TAG, source_tags
from pesnet.tracking.store import TrackingError, resolve_tracking_uri

#: Sub-directory of the run directory holding the rounds.
AL_DIR = "active-learning"


# -- rounds -----------------------------------------------------------------------------------
class RoundResult(NamedTuple):
    round: int
    directory: Path
    status: str  # "ran", "up to date", "converged" (nothing picked)
    threshold: float
    max_std: float
    n_candidates: int
    n_picked: int
    n_configs: int
    metrics: dict | None  # the evaluated split's metrics after retraining
    holdout: dict | None  # holdout metrics after retraining
    run_id: str | None
    model_version: str | None


class ActiveLearningResult(NamedTuple):
    run_dir: Path
    initial_holdout: dict | None
    rounds: list
    parent_run_id: str | None
    tracking_uri: str | None
    tracking_error: str | None

    @property
    def model_path(self) -> Path:
        """The newest model (the last retrained round's, else the pipeline's)."""
        for r in reversed(self.rounds):
            if r.status != "converged":
                return r.directory / "model.h5"
        return self.run_dir / "model.h5"


class Rounds(NamedTuple):
    """What every round of one active learning shares."""

    pipeline: Pipeline
    n_rounds: int
    al_dir: Path
    calculator: str  # the reference calculator's name
    holdout: Path | None  # the ingested holdout files
    initial_holdout: dict | None  # holdout metrics of the pipeline's own model
    recorder: Recorder
    uri: str | None
    progress: bool
    out: object


def al_params(al: ActiveLearningSpec) -> dict:
    """The ``[active_learning]`` table as flat MLflow params (``active_learning.<key>``)."""
    return flatten({"active_learning": al.model_dump(mode="json")})


def _round_key(prev_model: Path, prev_dataset: Path, al: ActiveLearningSpec, calculator: str,
               k: int, seeds_digest: str) -> str:
    table = al.model_dump(mode="json")
    for unused in ("rounds", "holdout"):
        table.pop(unused)
    text = json.dumps({"model": sha256_file(prev_model), "dataset": sha256_file(prev_dataset),
                       "table": table, "calculator": calculator, "round": k,
                       "seeds": seeds_digest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _seeds_digest(seeds) -> str:
    h = hashlib.sha256()
    for a in seeds:
        for array in (a.numbers, a.positions, a.cell[:], a.pbc):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _holdout_dataset(pipeline: Pipeline, al_dir: Path) -> Path | None:
    """The holdout files ingested once into ``active-learning/holdout.h5`` (None: none)."""
    from pesnet.data.ingest import ingest

    if not pipeline.spec.active_learning.holdout:
        return None
    files = [resolve_path(pipeline.root, name) for name in pipeline.spec.active_learning.holdout]
    for k, path in enumerate(files):
        if not path.is_file():
            raise InputError(f"{pipeline.path}: active_learning.holdout[{k}]: {path}: no such "
                             f"file")
    target = al_dir / "holdout.h5"
    stamp = al_dir / "holdout.json"
    digests = [sha256_file(p) for p in files]
    if target.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == digests:
        return target
    ingest(files, target)
    with atomic_output(stamp, suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps(digests))
    return target


def _score_holdout(model_path: Path, holdout: Path | None) -> dict | None:
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.potential.io import load_model

    if holdout is None:
        return None
    return evaluate_potential(load_model(model_path), holdout).metrics


def _line(out, text: str) -> None:
    print(text, file=out, flush=True)


def _recorder(pipeline: Pipeline, uri, run_dir: Path, al_dir: Path, err) -> Recorder:
    """The parent run (``pesnet.role = active-learning``) of the rounds' runs."""
    tags = source_tags(pipeline.name, pipeline.path, pipeline.root, run_dir)
    return Recorder(uri, pipeline.name,
                    {"pipeline": pipeline.name, **al_params(pipeline.spec.active_learning)},
                    {**tags, ROLE_TAG: "active-learning",
                     "mlflow.runName": f"active-learning-{time.strftime('%Y%m%d-%H%M%S')}"},
                    f"active learning of {pipeline.name}", command="pesnet active-learn",
                    consequence=f"; the rounds go on and write their results to {al_dir}",
                    err=err)


def run_active_learning(pipeline: Pipeline, run_dir=None, rounds: int | None = None,
                        tracking: bool = True, tracking_uri: str | None = None,
                        progress: bool = True, out=None, err=None) -> ActiveLearningResult:
    """Bring the pipeline up to date, then run the active-learning rounds (module doc)."""
    from pesnet.pipeline.runner import RUNS_DIR, run_pipeline

    out = out or sys.stdout
    err = err or sys.stderr
    al = pipeline.spec.active_learning
    if al is None:
        raise InputError(f"{pipeline.path}: no [active_learning] table (see the README, "
                         f"\"Active learning\")")
    calculator_name = reference_calculator_name(pipeline)
    n_rounds = rounds if rounds is not None else al.rounds
    if n_rounds < 1:
        raise InputError(f"--rounds must be at least 1, got {n_rounds}")
    run_dir = Path(run_dir) if run_dir is not None else Path(RUNS_DIR) / pipeline.name
    uri = resolve_tracking_uri(tracking_uri) if tracking else None

    _line(out, f"round 0: the pipeline ({run_dir}/)")
    base = run_pipeline(pipeline, run_dir=run_dir, tracking=tracking, tracking_uri=uri,
                        progress=progress, out=out, err=err)
    al_dir = run_dir / AL_DIR
    recorder = _recorder(pipeline, uri, run_dir, al_dir, err)
    if base.tracking_error:
        recorder.fail(base.tracking_error)
    results = []
    status, message = "FINISHED", None
    with run_dir_lock(al_dir):
        try:
            holdout = _holdout_dataset(pipeline, al_dir)
            initial_holdout = _score_holdout(run_dir / "model.h5", holdout)
            if initial_holdout:
                _line(out, f"round 0: holdout MAE {_mae_text(initial_holdout)}")
                recorder.opening_metrics = {f"holdout_{n}": v for n, v in initial_holdout.items()}
            shared = Rounds(pipeline, n_rounds, al_dir, calculator_name, holdout,
                            initial_holdout, recorder, uri, progress, out)
            prev = run_dir
            for k in range(1, n_rounds + 1):
                result = _run_round(shared, k, prev)
                results.append(result)
                if result.status == "converged":
                    break
                prev = result.directory
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (pesnet.cli.main.Terminated)
            status, message = "KILLED", str(error) or "interrupted"
            raise
        except BaseException as error:
            status, message = "FAILED", f"{type(error).__name__}: {error}"
            raise
        finally:
            recorder.close(status, message)
    return ActiveLearningResult(run_dir, initial_holdout, results, recorder.run_id, uri,
                                recorder.error)


def _mae_text(m: dict) -> str:
    forces = f", {1e3 * m['force_mae']:.1f} meV/Å" if "force_mae" in m else ""
    return f"{1e3 * m['energy_mae_per_atom']:.2f} meV/atom{forces}"


def _run_round(shared: Rounds, k: int, prev: Path) -> RoundResult:
    """Round ``k`` on the model and dataset of the directory ``prev`` (module doc, 1–5)."""
    directory = shared.al_dir / f"round-{k:02d}"
    directory.mkdir(parents=True, exist_ok=True)
    record, reuse = _labelled_frames(shared, k, prev, directory)
    al_metrics = {"al_threshold": record["threshold"], "al_max_std": record["max_std"],
                  "al_n_candidates": record["n_candidates"], "al_n_picked": record["n_picked"]}
    if record["n_picked"] == 0:
        return _converged(shared, k, directory, record, al_metrics, reuse)
    return _retrain(shared, k, directory, record, al_metrics, reuse)


def _labelled_frames(shared: Rounds, k: int, prev: Path, directory: Path):
    """(``round.json``'s record, True if it was reused): steps 1–4 of round ``k``, or their
    record from an earlier run when the round's inputs are unchanged."""
    from pesnet.potential.io import load_model

    al = shared.pipeline.spec.active_learning
    model = load_model(prev / "model.h5")
    seeds = seed_structures(shared.pipeline, model, run_dir_dataset(shared.al_dir))
    key = _round_key(prev / "model.h5", prev / "dataset.h5", al, shared.calculator, k,
                     _seeds_digest(seeds))
    record = None
    if (directory / "round.json").is_file():
        with contextlib.suppress(OSError, ValueError):
            record = json.loads((directory / "round.json").read_text())
    dataset = directory / "dataset.h5"
    if (record is not None and record.get("key") == key and
            (record["n_picked"] == 0 or (dataset.is_file()
                                         and sha256_file(dataset) == record["dataset_sha256"]))):
        _line(shared.out, f"round {k}/{shared.n_rounds}: labelled frames up to date "
                          f"({record['n_picked']} picked)")
        return record, True
    return _explore_and_label(shared, k, prev, directory, model, seeds, key), False


def _explore_and_label(shared: Rounds, k, prev: Path, directory: Path, model, seeds,
                       key: str) -> dict:
    """MD, selection and labelling of round ``k``: ``selected.extxyz``, the grown
    ``dataset.h5`` and ``round.json`` in ``directory``; returns the record."""
    import ase.io

    from pesnet.data.calculators import make_calculator

    al, started = shared.pipeline.spec.active_learning, time.perf_counter()
    threshold = al.threshold if al.threshold is not None else quantile_threshold(
        model, prev / "dataset.h5", al.selection_quantile, al.seed)
    found = explore(model, seeds, al, threshold, (al.seed, k), shared.progress)
    picked = select(found.candidates, al.min_spacing, al.max_new)
    labelled, skipped = label(picked, make_calculator(shared.calculator), f"al_round{k}")
    record = {"key": key, "round": k, "threshold": threshold,
              "threshold_from": "threshold" if al.threshold is not None
              else f"quantile {al.selection_quantile} of the training set",
              "max_std": found.max_score, "n_frames": found.n_frames,
              "n_candidates": len(found.candidates), "n_trajectories_stopped": found.stopped,
              "n_picked": len(labelled), "skipped": skipped, "calculator": shared.calculator,
              "picked": [{"trajectory": c.trajectory, "step": c.step,
                          "temperature_K": c.temperature_K, "force_std_max": c.score}
                         for c in picked],
              "previous_model": str((prev / "model.h5").resolve())}
    if labelled:
        selected = directory / "selected.extxyz"
        with atomic_output(selected, suffix=".extxyz") as tmp:
            ase.io.write(tmp, labelled, format="extxyz")
        record["n_configs"] = append_configurations(
            prev / "dataset.h5", ase.io.read(selected, index=":"), directory / "dataset.h5",
            selected)
        record["dataset_sha256"] = sha256_file(directory / "dataset.h5")
    with atomic_output(directory / "round.json", suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    skipped_text = f"; {len(skipped)} skipped ({skipped[0]})" if skipped else ""
    stops = f", {found.stopped} trajectories stopped early" if found.stopped else ""
    _line(shared.out, f"round {k}/{shared.n_rounds}: MD {found.n_frames} frames at "
                      f"{'/'.join(f'{t:g}' for t in al.temperatures)} K{stops}: max σ_F "
                      f"{found.max_score:.3f} eV/Å (threshold {threshold:.3f}); picked "
                      f"{len(labelled)} of {len(found.candidates)} candidates, labelled with "
                      f"{shared.calculator}{skipped_text} "
                      f"({time.perf_counter() - started:.1f} s)")
    return record


def _round_run(shared: Rounds, k: int):
    """Round ``k``'s MLflow run, nested under the active learning's (None: not tracked)."""
    p = shared.pipeline
    return shared.recorder.child(
        f"round-{k}", {**p.flat_params(), "active_learning.round": k},
        {**source_tags(p.name, p.path, p.root, shared.al_dir.parent), "pesnet.al_round": k},
        description=p.spec.description)


def _converged(shared: Rounds, k, directory: Path, record: dict, al_metrics: dict,
               reuse: bool) -> RoundResult:
    """A round that picked nothing: recorded (when new), nothing retrained."""
    _line(shared.out, f"round {k}/{shared.n_rounds}: nothing above the threshold: converged, "
                      f"no retraining")
    run_id = None
    if not reuse:
        session = _round_run(shared, k)
        if session is not None:
            with contextlib.suppress(TrackingError):
                session.log_metrics(al_metrics)
                session.log_artifact(directory / "round.json")
            run_id = session.run_id
            session.end("FAILED" if session.broken else "FINISHED", session.broken)
        shared.recorder.log_metrics(al_metrics, step=k)
    return RoundResult(k, directory, "converged", record["threshold"], record["max_std"],
                       record["n_candidates"], 0, 0, None, None, run_id, None)


def _retrain(shared: Rounds, k, directory: Path, record: dict, al_metrics: dict,
             reuse: bool) -> RoundResult:
    """Step 5: featurize → train → evaluate (→ log → register) on the grown dataset, by the
    step engine, in the round's own MLflow run."""
    from pesnet.pipeline.steps import STEPS, read_metrics

    tag = f"round {k}/{shared.n_rounds}"
    copy_spec(shared.pipeline, directory)
    ctx = Context(shared.pipeline, directory, StepState(directory), shared.uri,
                  shared.progress, executor=executor_for(shared.pipeline.spec.compute))
    steps = [s for s in STEPS if s.name != "ingest"]
    stale = plan(ctx, [s for s in steps if not s.tracking], stale=not reuse)
    if not any(stale.values()):
        _line(shared.out, f"{tag}: retrained model up to date")
        return RoundResult(k, directory, "up to date", record["threshold"], record["max_std"],
                           record["n_candidates"], record["n_picked"], record.get("n_configs", 0),
                           read_metrics(directory)["metrics"],
                           _score_holdout(directory / "model.h5", shared.holdout), None, None)
    if shared.uri is not None:
        ctx.session = _round_run(shared, k)
        if ctx.session is None:  # the MLflow steps are off for this round
            ctx.tracking_uri, ctx.tracking_error = None, shared.recorder.error
    try:
        done = execute(ctx, steps, forced={n for n, s in stale.items() if s},
                       track_always=True, report=_round_printer(shared, tag))
    finally:
        ctx.executor.close()
    if done.failure is not None:
        if ctx.session is not None:
            ctx.session.end("FAILED", f"{type(done.failure).__name__}: {done.failure}")
        raise done.failure
    return _record_round(shared, k, ctx, record, al_metrics)


def _round_printer(shared: Rounds, tag: str):
    """The engine's report as ``round k/n: step: what happened`` lines; a tracking failure
    goes to the recorder (one warning for the whole active learning)."""
    def report(k: int, n: int, outcome, error) -> None:
        if isinstance(error, TrackingError):
            shared.recorder.fail(error)
        elif outcome.status == "up to date":
            _line(shared.out, f"{tag}: {outcome.name} up to date")
        elif outcome.status == "ran":
            _line(shared.out, f"{tag}: {outcome.name}: {outcome.summary} "
                              f"({outcome.seconds:.1f} s)")

    return report


def _record_round(shared: Rounds, k, ctx: Context, record: dict,
                  al_metrics: dict) -> RoundResult:
    """A retrained round's holdout score, its metrics in its run and the parent's."""
    from pesnet.pipeline.steps import read_metrics

    directory = ctx.run_dir
    scores = read_metrics(directory)
    held = _score_holdout(directory / "model.h5", shared.holdout)
    if held:
        before = shared.initial_holdout
        _line(shared.out, f"round {k}/{shared.n_rounds}: holdout MAE {_mae_text(held)}"
                          + (f" (before: {_mae_text(before)})" if k == 1 and before else ""))
    held_metrics = {f"holdout_{n}": v for n, v in (held or {}).items()}
    run_id = version = None
    if ctx.session is not None:
        try:
            ctx.session.log_metrics({**al_metrics, "al_n_configs": record["n_configs"],
                                     **held_metrics})
            ctx.session.log_artifact(directory / "round.json")
            ctx.session.log_artifact(directory / "selected.extxyz")
            run_id = ctx.session.run_id
            version = (ctx.state.entry("register") or {}).get("info", {}).get("version")
        except TrackingError as error:
            shared.recorder.fail(error)
        ctx.session.end("FAILED" if ctx.session.broken else "FINISHED", ctx.session.broken)
    shared.recorder.log_metrics(
        {**al_metrics, "al_n_configs": record["n_configs"],
         **{f"{scores['split']}_{n}": v for n, v in scores["metrics"].items()}, **held_metrics},
        step=k)
    return RoundResult(k, directory, "ran", record["threshold"], record["max_std"],
                       record["n_candidates"], record["n_picked"], record["n_configs"],
                       scores["metrics"], held, run_id, version)


def run_dir_dataset(al_dir: Path) -> Path:
    """The pipeline's own dataset (seed structures come from its training split)."""
    return al_dir.parent / "dataset.h5"
