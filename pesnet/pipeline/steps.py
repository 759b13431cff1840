"""The steps of a pipeline and the content hashes that let a step be skipped.

ingest → featurize → train → evaluate → log → register; what they share (keys, state,
context, the engine running them) is in :mod:`pesnet.pipeline.engine`.

The MLflow steps (log, register) run whenever the pipeline did any work in this invocation,
so every MLflow run is complete on its own (curves are replayed from ``history.json`` when
training was skipped).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from pesnet.errors import InputError
from pesnet.fileio import atomic_output
from pesnet.pipeline.engine import Step, StepResult
from pesnet.pipeline.executors import CHECKPOINT
from pesnet.tracking.store import TrackingError
from pesnet.training.records import history_to_json, read_history

PLOTS_DIR = "plots"


# -- data ------------------------------------------------------------------------------------
class Ingest(Step):
    """Source files (or a recipe's generated data) → ``dataset.h5``, validated."""

    name = "ingest"

    def params(self, ctx):
        d = ctx.spec.dataset
        return {"format": d.format, "index": d.index, "energy_key": d.energy_key,
                "forces_key": d.forces_key, "stress_key": d.stress_key,
                "recipe": d.recipe.model_dump() if d.recipe else None}

    def inputs(self, ctx):
        return {f"files[{k}]": p for k, p in enumerate(ctx.pipeline.source_files())}

    def outputs(self, ctx):
        out = {"dataset": ctx.path("dataset.h5")}
        if ctx.spec.dataset.recipe:
            out["reference"] = ctx.path("reference.extxyz")
        return out

    def _generate(self, ctx) -> Path:
        import ase.io

        from pesnet.data.calculators import make_calculator
        from pesnet.data.recipes import RECIPES, run_recipe

        recipe = ctx.spec.dataset.recipe
        calculator_name = recipe.calculator or RECIPES[recipe.name].default_calculator
        frames = run_recipe(recipe.name, make_calculator(calculator_name), seed=recipe.seed,
                            scale=recipe.scale)
        bar = _bar(ctx, "generate", None, " configs")
        collected = []
        for atoms in frames:
            collected.append(atoms)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        target = ctx.path("reference.extxyz")
        with atomic_output(target, suffix=".extxyz") as tmp:
            ase.io.write(tmp, collected, format="extxyz")
        return target

    def run(self, ctx, key):
        from pesnet.data import Dataset
        from pesnet.data.ingest import LabelKeys, ingest

        d = ctx.spec.dataset
        sources = ctx.pipeline.source_files()   # dataset.files, then the split's files
        if d.recipe:
            sources = [self._generate(ctx), *sources]
        keys = LabelKeys(energy=d.energy_key, forces=d.forces_key, stress=d.stress_key)
        ingest(sources, ctx.path("dataset.h5"), fmt=None if d.recipe else d.format,
               index=":" if d.recipe else d.index, keys=keys, progress=ctx.progress)
        with Dataset(ctx.path("dataset.h5")) as ds:
            n, atoms, elements = len(ds), ds.n_atoms_total, ds.elements
        from ase.data import chemical_symbols

        symbols = " ".join(chemical_symbols[z] for z in elements)
        return StepResult(f"{n} configurations, {atoms} atoms ({symbols})", self.outputs(ctx),
                          {"n_configs": n, "n_atoms": atoms, "elements": list(elements)})


class Featurize(Step):
    """``dataset.h5`` → ``features.h5``: descriptor values and derivatives, training
    statistics."""

    name = "featurize"

    def acsf_params(self, ctx) -> dict:
        from pesnet.data import Dataset

        with Dataset(ctx.path("dataset.h5")) as ds:
            elements = ds.elements
        if not elements:
            raise InputError(f"{ctx.path('dataset.h5')}: the dataset has no atoms")
        chosen = ctx.spec.descriptor.elements
        if chosen is not None:
            from ase.data import atomic_numbers, chemical_symbols

            covered = {atomic_numbers[symbol] for symbol in chosen}
            missing = [chemical_symbols[z] for z in elements if z not in covered]
            if missing:
                raise InputError(f"{ctx.pipeline.path}: descriptor.elements "
                                 f"{list(chosen)} lacks {', '.join(missing)}, which the data "
                                 "contains: add it, or leave elements out (default: the data's)")
        return ctx.spec.descriptor.parameters(elements)

    def params(self, ctx):
        split = {k: v for k, v in ctx.spec.split.model_dump().items()
                 if k in ("fractions", "seed") or v}   # unset fixed parts leave keys as before
        return {"acsf": self.acsf_params(ctx), "split": split,
                "derivative_dtype": ctx.spec.descriptor.derivative_dtype,
                "derivatives": _uses_forces(ctx)}

    def inputs(self, ctx):
        return {"dataset": ctx.path("dataset.h5"), **ctx.pipeline.index_files()}

    def outputs(self, ctx):
        return {"features": ctx.path("features.h5")}

    def run(self, ctx, key):
        from pesnet.descriptors.registry import descriptor_from_params
        from pesnet.pipeline.splits import spec_split

        descriptor = descriptor_from_params(self.acsf_params(ctx))
        summary = ctx.executor.featurize(
            ctx.path("dataset.h5").resolve(), ctx.path("features.h5"), descriptor,
            derivatives=_uses_forces(ctx), split=spec_split(ctx.pipeline, ctx.path("dataset.h5")),
            seed=ctx.spec.split.seed, derivative_dtype=ctx.spec.descriptor.derivative_dtype,
            progress=ctx.progress)
        return StepResult(f"{summary.n_configs} configurations, {summary.n_features} features "
                          f"({descriptor.cutoff:g} Å cutoff), {summary.file_bytes / 1e6:.0f} MB",
                          {**self.outputs(ctx), **_shard_outputs(ctx)},
                          {"n_features": summary.n_features})


def _shard_outputs(ctx) -> dict:
    """The shards of a sharded ``features.h5`` as step outputs (none for a plain file), their
    digests those the workers took: a shard edited in place makes featurize stale, and the
    client never reads the shards to hash them."""
    from pesnet.descriptors.shard_index import shard_files

    outputs = {}
    for path, digest in shard_files(ctx.path("features.h5")):
        if digest is not None:
            ctx.state.remember(path, digest)
        outputs[f"shard {path.name}"] = path
    return outputs


def _training_callbacks(ctx, settings):
    """(callbacks, the MLflow one or None): a progress bar, and the learning curves streamed
    to the session when there is one."""
    callbacks, tracker = [], None
    if ctx.progress:
        from pesnet.training.progress import ProgressBar

        callbacks.append(ProgressBar(settings.epochs))
    if ctx.session is not None and not ctx.session.broken:
        from pesnet.tracking.callback import MLflowCallback

        tracker = MLflowCallback(ctx.session)
        callbacks.append(tracker)
    return callbacks, tracker


def _uses_forces(ctx) -> bool:
    return ctx.spec.train_settings().force_weight > 0


# -- training --------------------------------------------------------------------------------
class Train(Step):
    """``features.h5`` → ``model.h5`` (+ ``history.json``): the ensemble, with a checkpoint
    that a rerun with the same key resumes from."""

    name = "train"

    def params(self, ctx):
        return ctx.spec.train_settings().to_dict()

    def inputs(self, ctx):
        return {"features": ctx.path("features.h5"), "dataset": ctx.path("dataset.h5")}

    def outputs(self, ctx):
        return {"model": ctx.path("model.h5"), "history": ctx.path("history.json")}

    def run(self, ctx, key):
        from pesnet.potential.io import save_model

        settings = ctx.spec.train_settings()
        checkpoint = ctx.path(CHECKPOINT)
        pending = (ctx.state.entry("train.pending") or {}).get("key")
        resume = pending == key and checkpoint.is_file()
        ctx.state.steps["train.pending"] = {"key": key}
        ctx.state.save()
        callbacks, tracker = _training_callbacks(ctx, settings)
        executor = ctx.executor
        result = executor.train(ctx.path("features.h5"), settings, ctx.path("dataset.h5"),
                                ctx.run_dir, pending == key, callbacks, ctx.progress)
        save_model(result.potential, ctx.path("model.h5"))
        with atomic_output(ctx.path("history.json"), suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps(history_to_json(result.history)))
        ctx.state.steps.pop("train.pending", None)
        with contextlib.suppress(OSError):
            checkpoint.unlink()
        if tracker is not None and executor.in_process:  # else curves are logged afterwards
            ctx.trained_live = tracker.error is None
            if tracker.error:
                ctx.tracking_error = ctx.tracking_error or tracker.error
        last = result.history[-1]
        potential = result.potential
        scores = ("; validation MAE "
                  f"{1e3 * last.val_energy_mae_ensemble:.2f} meV/atom, "
                  f"{1e3 * last.val_force_mae_ensemble:.1f} meV/Å") if executor.in_process \
            else f" on {executor.describe()}"
        return StepResult(
            f"{potential.n_members} members, {last.epoch + 1} epochs"
            f"{' (resumed)' if resume else ''}{scores}",
            self.outputs(ctx), {"epochs": int(last.epoch + 1)})


# -- evaluation ------------------------------------------------------------------------------
class Evaluate(Step):
    """``model.h5`` on the chosen split → ``metrics.json`` and the plots."""

    name = "evaluate"

    def params(self, ctx):
        return {"split": ctx.spec.evaluate.split}

    def inputs(self, ctx):
        return {"model": ctx.path("model.h5"), "dataset": ctx.path("dataset.h5"),
                "history": ctx.path("history.json")}

    def outputs(self, ctx):
        return {"metrics": ctx.path("metrics.json")}

    def run(self, ctx, key):
        from pesnet.data import Dataset
        from pesnet.data.split import split_from_info
        from pesnet.potential.evaluate import evaluate_potential, group_metrics
        from pesnet.potential.io import load_model
        from pesnet.tracking.plots import write_plots

        model = load_model(ctx.path("model.h5"))
        name = ctx.spec.evaluate.split
        indices = None
        if name != "all":
            info = model.metadata["split"]
            with Dataset(ctx.path("dataset.h5")) as ds:
                n = len(ds)
            indices = getattr(split_from_info(info, n), name)
            if len(indices) == 0:
                rule = (f"split.fractions = {list(info['fractions'])}" if "fractions" in info
                        else "the [split] files leave it empty")
                raise InputError(f"{ctx.pipeline.path}: evaluate.split: the {name} split is "
                                 f"empty ({rule})")
        evaluation = evaluate_potential(model, ctx.path("dataset.h5"), indices,
                                        progress=ctx.progress)
        plots_dir = ctx.path(PLOTS_DIR)
        for old in plots_dir.glob("*.png") if plots_dir.is_dir() else ():
            old.unlink()
        written = write_plots(evaluation, read_history(ctx.path("history.json")), plots_dir)
        with atomic_output(ctx.path("metrics.json"), suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps({"split": name, "metrics": evaluation.metrics,
                                       "groups": group_metrics(evaluation)}, indent=2))
        outputs = {**self.outputs(ctx), **{f"plots/{p.name}": p for p in written}}
        m = evaluation.metrics
        forces = f", {1e3 * m['force_mae']:.1f} meV/Å" if "force_mae" in m else ""
        return StepResult(f"{name} split, {m['n_configs']} configurations: MAE "
                          f"{1e3 * m['energy_mae_per_atom']:.2f} meV/atom{forces}; "
                          f"{len(written)} plots", outputs)


def read_metrics(run_dir) -> dict:
    """metrics.json of a run directory: {"split": name, "metrics": {...}}."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


class Validate(Step):
    """``model.h5`` → ``properties.json`` (+ ``properties.png``): crystal properties of the
    model's element by every member, against the ``[validate]`` reference calculator."""

    name = "validate"

    def params(self, ctx):
        return ctx.spec.validate_properties.model_dump()

    def inputs(self, ctx):
        return {"model": ctx.path("model.h5")}

    def outputs(self, ctx):
        return {"properties": ctx.path("properties.json"), "plot": ctx.path("properties.png")}

    def run(self, ctx, key):
        from pesnet.data.calculators import make_calculator
        from pesnet.errors import PesnetError
        from pesnet.potential.io import load_model
        from pesnet.properties import ensemble_properties, results_json
        from pesnet.tracking.plots import property_errors

        spec = ctx.spec.validate_properties
        reference = None if spec.reference is None else make_calculator(spec.reference)
        try:
            results = ensemble_properties(load_model(ctx.path("model.h5")), spec.properties,
                                          reference, spec.element)
        except PesnetError as error:
            raise InputError(f"{ctx.pipeline.path}: validate: {error}") from None
        with atomic_output(ctx.path("properties.json"), suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps({"reference": spec.reference,
                                       "properties": results_json(results)}, indent=2))
        property_errors(results, ctx.path("properties.png"), spec.reference)
        inside = [r for r in results if r.within_2sigma]
        against = (f"; {spec.reference} inside 2σ for {len(inside)} of {len(results)}"
                   if spec.reference else "")
        return StepResult(f"{len(results)} properties{against}", self.outputs(ctx))


# -- MLflow ------------------------------------------------------------------------------------
class Log(Step):
    """Everything to the MLflow run: dataset input, tags, curves (replayed if training was
    skipped), final metrics, artefacts and the pyfunc model."""

    name = "log"
    tracking = True

    def params(self, ctx):
        return {"tracking_uri": ctx.tracking_uri, "experiment": ctx.spec.name}

    def inputs(self, ctx):
        files = {"spec": ctx.path("spec.toml"), "model": ctx.path("model.h5"),
                 "metrics": ctx.path("metrics.json"), "history": ctx.path("history.json")}
        return files

    def run(self, ctx, key):
        from pesnet.data import Dataset
        from pesnet.potential.io import load_model
        from pesnet.tracking.session import group_summary, in_mev, metric_safe, property_metrics

        session = _session(ctx)
        dataset = ctx.path("dataset.h5")
        dataset_sha = ctx.state.digest(dataset)
        model_sha = ctx.state.digest(ctx.path("model.h5"))
        model = load_model(ctx.path("model.h5"))
        sources = ctx.pipeline.source_files()
        recipe = ctx.spec.dataset.recipe
        with Dataset(dataset) as ds:
            n_configs = len(ds)
            example = min((ds[int(k)] for k in range(min(n_configs, 50))), key=len)
        session.set_tags({"pesnet.dataset_sha256": dataset_sha,
                          "pesnet.model_sha256": model_sha,
                          "pesnet.run_dir": str(ctx.run_dir.resolve()),
                          "pesnet.spec": str(ctx.pipeline.path.resolve()),
                          "pesnet.steps_run": ",".join(ctx.ran) or "none"})
        name = f"{recipe.name} ({recipe.calculator or 'default'})" if recipe else \
            ",".join(p.stem for p in sources)
        source = ctx.path("reference.extxyz") if recipe else sources[0]
        session.log_dataset(dataset, dataset_sha, name, source=source, n_configs=n_configs)
        if not ctx.trained_live:
            history = read_history(ctx.path("history.json"))
            settings = ctx.spec.train_settings()
            if not session.member_run_ids:
                session.start_members(settings.n_members, settings.seed, settings.bootstrap)
            session.log_epochs(history)
            session.finish_members(model.metadata)
        scores = read_metrics(ctx.run_dir)
        session.log_metrics(scores["metrics"], prefix=f"{scores['split']}_")
        session.log_metrics(in_mev(scores["metrics"]), prefix=f"{scores['split']}_")
        for group, values in scores.get("groups", {}).items():
            session.log_metrics(group_summary(values), prefix=f"{scores['split']}_group."
                                f"{metric_safe(group or 'none')}.")
        for file in ("spec.toml", "model.h5", "metrics.json", "history.json"):
            session.log_artifact(ctx.path(file))
        if ctx.path(PLOTS_DIR).is_dir():
            session.log_artifacts(ctx.path(PLOTS_DIR), PLOTS_DIR)
        if ctx.spec.validate_properties is not None and ctx.path("properties.json").is_file():
            validated = json.loads(ctx.path("properties.json").read_text())["properties"]
            session.log_metrics(property_metrics(validated))
            for file in ("properties.json", "properties.png"):
                session.log_artifact(ctx.path(file))
        model_uri, model_id = session.log_pyfunc(ctx.path("model.h5"), example)
        return StepResult(f"MLflow run {session.run_name} ({session.run_id[:8]}) in "
                          f"experiment {ctx.spec.name}", {},
                          {"run_id": session.run_id, "experiment_id": session.experiment_id,
                           "model_uri": model_uri,
                           "model_id": model_id, "model_sha256": model_sha,
                           "dataset_sha256": dataset_sha})


class Register(Step):
    """The logged pyfunc → a version of the registered model named in the spec."""

    name = "register"
    tracking = True

    def params(self, ctx):
        log = (ctx.state.entry("log") or {}).get("info", {})
        return {"name": ctx.spec.model_name, "enabled": ctx.spec.registry.enabled,
                "model_uri": log.get("model_uri"), "tracking_uri": ctx.tracking_uri}

    def run(self, ctx, key):
        if not ctx.spec.registry.enabled:
            return StepResult("disabled in the spec ([register] enabled = false)", {})
        session = _session(ctx)
        log = (ctx.state.entry("log") or {}).get("info", {})
        if log.get("run_id") != session.run_id:
            raise TrackingError("nothing to register: the log step did not finish in this run")
        name = ctx.spec.model_name
        version, created = session.register(
            name, log["model_uri"], log.get("model_id"),
            tags={"pesnet.model_sha256": log["model_sha256"],
                  "pesnet.dataset_sha256": log["dataset_sha256"],
                  "pesnet.pipeline": ctx.spec.name},
            description=ctx.spec.description)
        session.set_tags({"pesnet.registered_model": f"{name}/{version}"})
        what = "new version" if created else "already held by version"
        return StepResult(f"model {name}: {what} {version} (models:/{name}/{version})", {},
                          {"name": name, "version": version})


def _session(ctx):
    if ctx.session is None or ctx.session.broken:
        reason = (ctx.session.broken if ctx.session is not None else None) or ctx.tracking_error
        raise TrackingError(reason or "no MLflow session")
    return ctx.session


def _bar(ctx, desc: str, total, unit: str):
    if not ctx.progress:
        return None
    from tqdm import tqdm

    return tqdm(disable=None, total=total, desc=desc, unit=unit, leave=False)


#: The pipeline, in order.
STEPS = (Ingest(), Featurize(), Train(), Evaluate(), Log(), Register())


def steps_for(spec) -> tuple:
    """The steps a spec runs: :data:`STEPS`, with :class:`Validate` after evaluate when the
    spec has a ``[validate]`` table."""
    if spec.validate_properties is None:
        return STEPS
    return (*STEPS[:4], Validate(), *STEPS[4:])
