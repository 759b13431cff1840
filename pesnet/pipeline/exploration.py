"""Exploration for active learning: uncertainty-scored MD, frame selection and labelling.

The steps 1–4 of a round of :mod:`pesnet.pipeline.active_learning`: Langevin MD from seed
structures with the product's calculator (:class:`~pesnet.calculator.PESNetCalculator`), each
frame scored by its largest atomic force spread max_i ‖σ_F,i‖ (eV/Å, :mod:`pesnet.md`); the
frames above a threshold picked apart in time; labelled by a reference calculator and appended
to a copy of the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pesnet.errors import InputError, PesnetError
from pesnet.fileio import atomic_output, sha256_file
from pesnet.pipeline.spec import ActiveLearningSpec, Pipeline, resolve_path

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

        bar = tqdm(disable=None, total=len(runs) * al.md_steps, desc="MD", unit=" steps",
                   leave=False)
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
        source = old.array("source")
        source_index = old.array("source_index")
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
    from pesnet.data import Dataset
    from pesnet.data.split import split_from_info

    with Dataset(dataset_path) as ds:
        n = len(ds)
    return split_from_info(model.metadata["split"], n).train


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
            path = resolve_path(pipeline.root, name)
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
