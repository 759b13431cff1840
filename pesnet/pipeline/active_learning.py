"""Active learning: grow the dataset where the ensemble disagrees, retrain, repeat.

``pesnet active-learn pipelines/NAME.toml`` first brings the pipeline up to date (``pesnet
run``; nothing is refitted when it is), then runs ``[active_learning] rounds`` rounds. A round

1. runs Langevin MD with the current ensemble from the seed structures (``seed_structures``
   files, or ``n_seeds`` configurations of the training split) at each ``temperature_K``;
2. scores every MD frame by its largest atomic force spread, max_i ‖σ_F,i‖ (the calibrated
   committee standard deviation of atom i's force vector, eV/Å), and keeps the frames above
   the threshold (``threshold``, or the ``quantile`` of the same score over the current
   training configurations); MD of a structure stops once the score exceeds
   ``stop_threshold``, or once two atoms come closer than :data:`COLLAPSE_FRACTION` of the
   seed's shortest distance (the trajectory has left the region the model knows);
3. picks frames greedily in time order, at least ``min_spacing`` MD steps apart within a
   trajectory, at most ``max_new`` (round-robin over trajectories; see :func:`select`);
4. labels them with the reference calculator (``calculator``, default the dataset recipe's;
   any name of :mod:`pesnet.data.calculators`), writes them to ``selected.extxyz`` and a new
   ``dataset.h5``: the previous dataset's rows, unchanged, then the new ones
   (``config_type = "al_round<k>"``);
5. runs featurize → train → evaluate (→ MLflow log → register) on it with the pipeline's
   settings, in ``RUN_DIR/active-learning/round-<k>/``.

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

from pesnet.errors import InputError, PesnetError
from pesnet.fileio import atomic_output, sha256_file
from pesnet.pipeline.spec import ActiveLearningSpec, Pipeline, _resolve

#: Sub-directory of the run directory holding the rounds.
AL_DIR = "active-learning"
#: MD stops when the shortest interatomic distance falls below this fraction of the seed's.
COLLAPSE_FRACTION = 0.75
#: Configurations scored at most to set a quantile threshold.
QUANTILE_SAMPLE = 256


def max_force_std(forces_std, offsets) -> np.ndarray:
    """Per configuration, the largest atomic force spread max_i ‖σ_F,i‖ (eV/Å): the score of
    :mod:`pesnet.md`, for the configurations delimited by ``offsets``."""
    from pesnet.md import atomic_force_spread

    norms = atomic_force_spread(forces_std)
    return np.maximum.reduceat(norms, np.asarray(offsets)[:-1]) if len(norms) else np.zeros(0)


# -- MD, selection, labelling -------------------------------------------------------------------
class Candidate(NamedTuple):
    """An MD frame above the threshold: trajectory (seed × temperature), step, score, structure."""

    trajectory: int
    step: int
    temperature_K: float
    score: float
    atoms: object


class Exploration(NamedTuple):
    candidates: list
    max_score: float
    n_frames: int
    stopped: int  # trajectories stopped by stop_threshold or a blow-up


def explore(potential, seeds, al: ActiveLearningSpec, threshold: float, rng_key,
            progress: bool = False) -> Exploration:
    """Langevin MD with ``potential`` from every seed at every temperature; frames scoring
    above ``threshold`` (and at most ``stop_threshold``) are the candidates."""
    from ase import units
    from ase.md.langevin import Langevin

    from pesnet.calculator import PESNetCalculator
    from pesnet.md import max_force_spread
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    candidates, max_score, n_frames, stopped = [], 0.0, 0, 0
    runs = [(s, t) for s in range(len(seeds)) for t in al.temperatures]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(runs) * al.md_steps, desc="MD", unit=" steps", leave=False)
    for trajectory, (k, temperature) in enumerate(runs):
        rng = np.random.default_rng([*rng_key, trajectory])
        atoms = seeds[k].copy()
        closest = COLLAPSE_FRACTION * _shortest_distance(atoms)
        # the product's calculator: a kept neighbour list, the same answers as predict()
        atoms.calc = PESNetCalculator(potential)
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
        dyn = Langevin(atoms, al.timestep_fs * units.fs, temperature_K=temperature,
                       friction=al.friction, rng=rng, fixcm=False)
        for step in range(1, al.md_steps + 1):
            dyn.run(1)
            atoms.get_forces()  # cached: the step computed them at these positions
            score = max_force_spread(atoms.calc.results["forces_std"])
            n_frames += 1
            if bar is not None:
                bar.update(1)
            if not np.isfinite(score) or not np.isfinite(atoms.positions).all() or (
                    al.stop_threshold is not None and score > al.stop_threshold) or (
                    _shortest_distance(atoms) < closest):
                stopped += 1
                if bar is not None:
                    bar.update(al.md_steps - step)
                break
            max_score = max(max_score, score)
            if score > threshold:
                frame = atoms.copy()
                frame.calc = None
                candidates.append(Candidate(trajectory, step, temperature, score, frame))
    if bar is not None:
        bar.close()
    return Exploration(candidates, max_score, n_frames, stopped)


def _shortest_distance(atoms, cutoff: float = 3.0) -> float:
    """The shortest interatomic distance (Å; ``cutoff`` if none is shorter)."""
    from pesnet.neighbours import neighbour_list

    (d,) = neighbour_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else cutoff


def select(candidates, min_spacing: int, max_new: int) -> list:
    """Pick candidates greedily in time order: in each trajectory the first frame above the
    threshold, then the next one at least ``min_spacing`` steps later, and so on; at most
    ``max_new`` in all, taken round-robin over trajectories (each one's earliest first).
    Returned in (trajectory, step) order.

    Time order, not largest spread first: the first frames past the threshold are where the
    model stopped knowing the dynamics; the largest spreads of a trajectory usually come after
    it has left the physical region (a collapsing or exploding structure)."""
    per_trajectory: dict[int, list] = {}
    for c in sorted(candidates, key=lambda c: (c.trajectory, c.step)):
        kept = per_trajectory.setdefault(c.trajectory, [])
        if not kept or c.step - kept[-1].step >= min_spacing:
            kept.append(c)
    chosen, depth = [], 0
    while len(chosen) < max_new:
        layer = [kept[depth] for _, kept in sorted(per_trajectory.items()) if len(kept) > depth]
        if not layer:
            break
        chosen += layer[:max_new - len(chosen)]
        depth += 1
    return sorted(chosen, key=lambda c: (c.trajectory, c.step))


def label(frames, calculator, config_type: str):
    """Reference labels for ``frames`` (Candidates): (labelled Atoms list, skipped reasons).

    A frame the calculator fails on, or that fails pesnet's checks (overlapping atoms, …), is
    skipped with its reason rather than stopping the round."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from pesnet.data.validate import validate_configuration

    labelled, skipped = [], []
    for c in frames:
        atoms = c.atoms.copy()
        atoms.calc = calculator
        try:
            results = {"energy": float(atoms.get_potential_energy()),
                       "forces": np.array(atoms.get_forces())}
            if atoms.pbc.all() and "stress" in getattr(calculator, "implemented_properties", ()):
                results["stress"] = np.array(atoms.get_stress())
            validate_configuration(atoms, results["energy"], results["forces"],
                                   results.get("stress"), "<md>", c.step)
        except PesnetError as error:
            skipped.append(str(error))
            continue
        except Exception as error:  # a reference code failing on one geometry (SCF, …)
            skipped.append(f"trajectory {c.trajectory} step {c.step}: {type(error).__name__}: "
                           f"{error}")
            continue
        atoms.calc = None
        atoms.info.clear()
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update({"config_type": config_type, "al_trajectory": c.trajectory,
                           "al_step": c.step, "al_temperature_K": c.temperature_K,
                           "al_force_std_max": c.score})
        labelled.append(atoms)
    return labelled, skipped


def append_configurations(old_path, frames, out_path, source_path) -> int:
    """Write ``out_path``: every configuration of the dataset ``old_path`` (values and sources
    unchanged), then ``frames`` (labelled Atoms) read from ``source_path``. Returns the count."""
    from pesnet.data import Dataset
    from pesnet.data.writer import DatasetWriter

    with Dataset(old_path) as old, atomic_output(out_path, suffix=".h5.tmp") as tmp, \
            DatasetWriter(tmp) as writer:
        for s in old.sources:
            writer.add_source(s["path"], s["sha256"], s.get("format"), s.get("index", ":"))
        source = old._file["source"][:]
        source_index = old._file["source_index"][:]
        for batch in old.iter_chunks(1024):
            for k, i in enumerate(batch.indices):
                a, b = batch.offsets[k], batch.offsets[k + 1]
                writer.append(batch.numbers[a:b], batch.positions[a:b], batch.cell[k],
                              batch.pbc[k],
                              energy=batch.energy[k] if batch.has_energy[k] else None,
                              forces=batch.forces[a:b] if batch.has_forces[k] else None,
                              stress=batch.stress[k] if batch.has_stress[k] else None,
                              config_type=str(batch.config_type[k]), source=int(source[i]),
                              source_index=int(source_index[i]))
        new = writer.add_source(Path(source_path).resolve(), sha256_file(source_path),
                                "extxyz", ":")
        for k, atoms in enumerate(frames):
            results = atoms.calc.results
            stress = results.get("stress")
            writer.append(atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc,
                          energy=results["energy"], forces=results["forces"],
                          stress=None if stress is None else np.asarray(stress).reshape(6),
                          config_type=atoms.info["config_type"], source=new, source_index=k)
        return writer.n_configs


# -- thresholds and seeds -----------------------------------------------------------------------
def training_indices(model, dataset_path) -> np.ndarray:
    """The training split of ``dataset_path`` that ``model`` was fitted on."""
    from pesnet.data import Dataset, split_indices

    info = model.metadata["split"]
    with Dataset(dataset_path) as ds:
        n = len(ds)
    return split_indices(n, tuple(info["fractions"]), int(info["seed"])).train


def quantile_threshold(model, dataset_path, quantile: float, seed: int) -> float:
    """The ``quantile`` of max_i ‖σ_F,i‖ over (at most :data:`QUANTILE_SAMPLE` of) the
    training configurations."""
    from pesnet.data import Dataset

    train = training_indices(model, dataset_path)
    if len(train) > QUANTILE_SAMPLE:
        train = np.sort(np.random.default_rng([seed, 1]).choice(train, QUANTILE_SAMPLE,
                                                                replace=False))
    scores = []
    with Dataset(dataset_path) as ds:
        for batch in ds.iter_chunks(32, indices=train):
            p = model.predict([batch.atoms(k) for k in range(len(batch))])
            scores.append(max_force_std(p.forces_std, p.offsets))
    return float(np.quantile(np.concatenate(scores), quantile))


def seed_structures(pipeline: Pipeline, model, dataset_path) -> list:
    """The MD starting structures: the spec's files, else ``n_seeds`` training configurations
    drawn with the table's seed (the same ones every round)."""
    import ase.io
    from ase.data import chemical_symbols

    from pesnet.data import Dataset

    al = pipeline.spec.active_learning
    seeds = []
    if al.seed_structures:
        for k, name in enumerate(al.seed_structures):
            path = _resolve(pipeline.root, name)
            try:
                seeds += list(ase.io.read(str(path), index=":"))
            except Exception as error:
                raise InputError(f"{pipeline.path}: active_learning.seed_structures[{k}]: "
                                 f"{path}: cannot be read ({error})") from None
    else:
        train = training_indices(model, dataset_path)
        rng = np.random.default_rng([al.seed, 2])
        pick = np.sort(rng.choice(train, min(al.n_seeds, len(train)), replace=False))
        with Dataset(dataset_path) as ds:
            seeds = ds[pick]
    clean = []
    for atoms in seeds:
        unknown = sorted(set(atoms.numbers.tolist()) - set(model.elements))
        if unknown:
            raise InputError(f"{pipeline.path}: active_learning.seed_structures: element "
                             f"{chemical_symbols[unknown[0]]} is not in the model "
                             f"({' '.join(chemical_symbols[z] for z in model.elements)})")
        atoms = atoms.copy()
        atoms.calc = None
        atoms.info.clear()
        clean.append(atoms)
    if not clean:
        raise InputError(f"{pipeline.path}: active_learning: no seed structures")
    return clean


def reference_calculator_name(pipeline: Pipeline) -> str:
    """``[active_learning] calculator``, else the dataset recipe's calculator."""
    from pesnet.data.recipes import RECIPES

    al = pipeline.spec.active_learning
    if al.calculator:
        return al.calculator
    recipe = pipeline.spec.dataset.recipe
    if recipe is not None:
        return recipe.calculator or RECIPES[recipe.name].default_calculator
    raise InputError(f"{pipeline.path}: active_learning.calculator: missing (required when "
                     f"the dataset comes from files; e.g. calculator = \"emt\")")


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


def _al_params(al: ActiveLearningSpec) -> dict:
    from pesnet.pipeline.spec import flatten

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


class _Tracker:
    """The parent run and its round runs; failures are remembered, never fatal to the fit."""

    def __init__(self, pipeline, uri, run_dir, err):
        self.pipeline, self.uri, self.run_dir, self.err = pipeline, uri, run_dir, err
        self.parent = None
        self.initial: dict = {}  # step-0 metrics of the parent (the pipeline's model)
        self.error = None

    def _tags(self) -> dict:
        from pesnet.tracking.session import git_commit

        tags = {"pesnet.pipeline": self.pipeline.name,
                "mlflow.source.name": str(self.pipeline.path), "mlflow.source.type": "LOCAL",
                "pesnet.run_dir": str(self.run_dir.resolve())}
        commit = git_commit(self.pipeline.root)
        if commit:
            tags["pesnet.git_commit"] = commit
            tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
        return tags

    def _fail(self, error) -> None:
        if self.error is None:
            self.error = str(error)
            print(f"pesnet active-learn: warning: tracking failed: {error}; the rounds go on "
                  f"and write their results to {self.run_dir / AL_DIR}", file=self.err,
                  flush=True)

    def start_parent(self):
        from pesnet.tracking.session import ROLE_TAG, TrackingSession
        from pesnet.tracking.store import TrackingError

        if self.uri is None or self.parent is not None or self.error:
            return self.parent
        try:
            self.parent = TrackingSession.start(
                self.uri, self.pipeline.name,
                {"pipeline": self.pipeline.name, **_al_params(self.pipeline.spec.active_learning)},
                {**self._tags(), ROLE_TAG: "active-learning",
                 "mlflow.runName": f"active-learning-{time.strftime('%Y%m%d-%H%M%S')}"},
                f"active learning of {self.pipeline.name}")
        except TrackingError as error:
            self._fail(error)
        if self.initial:
            self.log_parent(self.initial, 0)
        return self.parent

    def start_round(self, k: int):
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from pesnet.tracking.session import TrackingSession
        from pesnet.tracking.store import TrackingError

        parent = self.start_parent()
        if parent is None:
            return None
        try:
            params = {**self.pipeline.flat_params(), "active_learning.round": k}
            return TrackingSession.start(
                self.uri, self.pipeline.name, params,
                {**self._tags(), MLFLOW_PARENT_RUN_ID: parent.run_id, "pesnet.al_round": k,
                 "mlflow.runName": f"round-{k}"},
                self.pipeline.spec.description)
        except TrackingError as error:
            self._fail(error)
            return None

    def log_parent(self, metrics: dict, step: int) -> None:
        from pesnet.tracking.store import TrackingError

        if self.parent is None or self.parent.broken:
            return
        try:
            self.parent.log_metrics(metrics, step=step)
        except TrackingError as error:
            self._fail(error)

    def end(self, status: str = "FINISHED", message: str | None = None) -> None:
        if self.parent is not None:
            self.parent.end(status, message)


def _holdout_dataset(pipeline: Pipeline, al_dir: Path) -> Path | None:
    """The holdout files ingested once into ``active-learning/holdout.h5`` (None: none)."""
    from pesnet.data.ingest import ingest

    if not pipeline.spec.active_learning.holdout:
        return None
    files = [_resolve(pipeline.root, name) for name in pipeline.spec.active_learning.holdout]
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


def run_active_learning(pipeline: Pipeline, run_dir=None, rounds: int | None = None,
                        tracking: bool = True, tracking_uri: str | None = None,
                        progress: bool = True, out=None, err=None) -> ActiveLearningResult:
    """Bring the pipeline up to date, then run the active-learning rounds (module doc)."""
    from pesnet.pipeline.runner import RUNS_DIR, _run_dir_lock, run_pipeline
    from pesnet.tracking.store import resolve_tracking_uri

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
    tracker = _Tracker(pipeline, uri, run_dir, err)
    if base.tracking_error:
        tracker._fail(base.tracking_error)
    results = []
    status, message = "FINISHED", None
    with _run_dir_lock(al_dir):
        try:
            holdout = _holdout_dataset(pipeline, al_dir)
            initial_holdout = _score_holdout(run_dir / "model.h5", holdout)
            if initial_holdout:
                _line(out, f"round 0: holdout MAE {_mae_text(initial_holdout)}")
                tracker.initial = {f"holdout_{n}": v for n, v in initial_holdout.items()}
            prev = run_dir
            for k in range(1, n_rounds + 1):
                result = _run_round(pipeline, k, n_rounds, prev, al_dir, calculator_name,
                                    holdout, tracker, initial_holdout, uri, progress, out)
                results.append(result)
                if result.status == "converged":
                    break
                prev = result.directory
        except KeyboardInterrupt:
            status, message = "KILLED", "interrupted"
            raise
        except BaseException as error:
            status, message = "FAILED", f"{type(error).__name__}: {error}"
            raise
        finally:
            tracker.end(status, message)
    return ActiveLearningResult(run_dir, initial_holdout, results,
                                tracker.parent.run_id if tracker.parent else None, uri,
                                tracker.error)


def _mae_text(m: dict) -> str:
    forces = f", {1e3 * m['force_mae']:.1f} meV/Å" if "force_mae" in m else ""
    return f"{1e3 * m['energy_mae_per_atom']:.2f} meV/atom{forces}"


def _run_round(pipeline, k, n_rounds, prev: Path, al_dir: Path, calculator_name, holdout,
               tracker, initial_holdout, uri, progress, out) -> RoundResult:
    import ase.io

    from pesnet.data.calculators import make_calculator
    from pesnet.pipeline.steps import STEPS, Context, StepState, read_metrics
    from pesnet.potential.io import load_model
    from pesnet.tracking.store import TrackingError

    al = pipeline.spec.active_learning
    tag = f"round {k}/{n_rounds}"
    directory = al_dir / f"round-{k:02d}"
    directory.mkdir(parents=True, exist_ok=True)
    prev_model, prev_dataset = prev / "model.h5", prev / "dataset.h5"
    model = load_model(prev_model)
    seeds = seed_structures(pipeline, model, run_dir_dataset(al_dir))
    key = _round_key(prev_model, prev_dataset, al, calculator_name, k, _seeds_digest(seeds))
    record_path = directory / "round.json"
    record = None
    if record_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(record_path.read_text())
    dataset = directory / "dataset.h5"
    reuse = (record is not None and record.get("key") == key and
             (record["n_picked"] == 0 or (dataset.is_file()
                                          and sha256_file(dataset) == record["dataset_sha256"])))
    if not reuse:
        started = time.perf_counter()
        threshold = al.threshold if al.threshold is not None else quantile_threshold(
            model, prev_dataset, al.selection_quantile, al.seed)
        found = explore(model, seeds, al, threshold, (al.seed, k), progress)
        picked = select(found.candidates, al.min_spacing, al.max_new)
        labelled, skipped = label(picked, make_calculator(calculator_name), f"al_round{k}")
        record = {"key": key, "round": k, "threshold": threshold,
                  "threshold_from": "threshold" if al.threshold is not None
                  else f"quantile {al.selection_quantile} of the training set",
                  "max_std": found.max_score, "n_frames": found.n_frames,
                  "n_candidates": len(found.candidates), "n_trajectories_stopped": found.stopped,
                  "n_picked": len(labelled), "skipped": skipped, "calculator": calculator_name,
                  "picked": [{"trajectory": c.trajectory, "step": c.step,
                              "temperature_K": c.temperature_K, "force_std_max": c.score}
                             for c in picked],
                  "previous_model": str(prev_model.resolve())}
        if labelled:
            selected = directory / "selected.extxyz"
            with atomic_output(selected, suffix=".extxyz") as tmp:
                ase.io.write(tmp, labelled, format="extxyz")
            record["n_configs"] = append_configurations(prev_dataset, ase.io.read(
                selected, index=":"), dataset, selected)
            record["dataset_sha256"] = sha256_file(dataset)
        with atomic_output(record_path, suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps(record, indent=1))
        skipped_text = f"; {len(skipped)} skipped ({skipped[0]})" if skipped else ""
        stops = f", {found.stopped} trajectories stopped early" if found.stopped else ""
        _line(out, f"{tag}: MD {found.n_frames} frames at "
                   f"{'/'.join(f'{t:g}' for t in al.temperatures)} K{stops}: max σ_F "
                   f"{found.max_score:.3f} eV/Å (threshold {threshold:.3f}); picked "
                   f"{len(labelled)} of {len(found.candidates)} candidates, labelled with "
                   f"{calculator_name}{skipped_text} ({time.perf_counter() - started:.1f} s)")
    else:
        _line(out, f"{tag}: labelled frames up to date ({record['n_picked']} picked)")
    al_metrics = {"al_threshold": record["threshold"], "al_max_std": record["max_std"],
                  "al_n_candidates": record["n_candidates"], "al_n_picked": record["n_picked"]}
    if record["n_picked"] == 0:
        _line(out, f"{tag}: nothing above the threshold: converged, no retraining")
        run_id = None
        if not reuse:
            session = tracker.start_round(k)
            if session is not None:
                with contextlib.suppress(TrackingError):
                    session.log_metrics(al_metrics)
                    session.log_artifact(record_path)
                run_id = session.run_id
                session.end("FAILED" if session.broken else "FINISHED", session.broken)
            tracker.log_parent(al_metrics, k)
        return RoundResult(k, directory, "converged", record["threshold"], record["max_std"],
                           record["n_candidates"], 0, 0, None, None, run_id, None)

    # featurize → train → evaluate (→ log → register) on the grown dataset
    spec_copy = directory / "spec.toml"
    if not spec_copy.is_file() or spec_copy.read_text() != pipeline.text:
        with atomic_output(spec_copy, suffix=".toml.tmp") as tmp:
            tmp.write_text(pipeline.text)
    ctx = Context(pipeline, directory, StepState(directory), uri, progress,
                  compute=pipeline.spec.compute)
    steps = [s for s in STEPS if s.name != "ingest"]
    plan, stale = {}, not reuse
    for step in steps:
        if not step.tracking and not stale:
            try:
                stale = not step.up_to_date(ctx, step.key(ctx))
            except (OSError, PesnetError, KeyError):
                stale = True
        plan[step.name] = stale
    work = any(plan[s.name] for s in steps if not s.tracking)
    if not work:
        _line(out, f"{tag}: retrained model up to date")
        metrics = read_metrics(directory)["metrics"]
        return RoundResult(k, directory, "up to date", record["threshold"], record["max_std"],
                           record["n_candidates"], record["n_picked"], record.get("n_configs", 0),
                           metrics, _score_holdout(directory / "model.h5", holdout), None, None)
    if uri is not None:
        ctx.session = tracker.start_round(k)
        if ctx.session is None:
            ctx.tracking_error = tracker.error
    failure = None
    try:
        for step in steps:
            if step.tracking and (uri is None or ctx.session is None):
                continue
            started = time.perf_counter()
            step_key = step.key(ctx)
            if not plan[step.name] and not step.tracking and step.up_to_date(ctx, step_key):
                _line(out, f"{tag}: {step.name} up to date")
                continue
            try:
                result = step.run(ctx, step_key)
            except TrackingError as error:
                ctx.state.forget(step.name)
                tracker._fail(error)
                continue
            ctx.state.record(step.name, step_key, result.outputs, result.info)
            ctx.ran.append(step.name)
            _line(out, f"{tag}: {step.name}: {result.summary} "
                       f"({time.perf_counter() - started:.1f} s)")
    except BaseException as error:
        failure = error
        raise
    finally:
        if ctx.cluster is not None:
            ctx.cluster.close()
        if failure is not None and ctx.session is not None:
            ctx.session.end("FAILED", f"{type(failure).__name__}: {failure}")
    metrics = read_metrics(directory)["metrics"]
    held = _score_holdout(directory / "model.h5", holdout)
    if held:
        _line(out, f"{tag}: holdout MAE {_mae_text(held)}"
                   + (f" (before: {_mae_text(initial_holdout)})" if k == 1 and initial_holdout
                      else ""))
    round_metrics = {**al_metrics, "al_n_configs": record["n_configs"],
                     **{f"{read_metrics(directory)['split']}_{n}": v for n, v in metrics.items()},
                     **{f"holdout_{n}": v for n, v in (held or {}).items()}}
    run_id = version = None
    if ctx.session is not None:
        try:
            ctx.session.log_metrics({**al_metrics, "al_n_configs": record["n_configs"],
                                     **{f"holdout_{n}": v for n, v in (held or {}).items()}})
            ctx.session.log_artifact(record_path)
            ctx.session.log_artifact(directory / "selected.extxyz")
            run_id = ctx.session.run_id
            version = (ctx.state.entry("register") or {}).get("info", {}).get("version")
        except TrackingError as error:
            tracker._fail(error)
        ctx.session.end("FAILED" if ctx.session.broken else "FINISHED", ctx.session.broken)
    tracker.log_parent(round_metrics, k)
    return RoundResult(k, directory, "ran", record["threshold"], record["max_std"],
                       record["n_candidates"], record["n_picked"], record["n_configs"], metrics,
                       held, run_id, version)


def run_dir_dataset(al_dir: Path) -> Path:
    """The pipeline's own dataset (seed structures come from its training split)."""
    return al_dir.parent / "dataset.h5"
