"""One pipeline run in MLflow: a parent run, one nested run per ensemble member, and what is
logged to them.

Layout in the store: experiment = pipeline name; the parent run holds the flattened spec as
params, tags (pesnet version, git commit, dataset digest), per-epoch metrics of the ensemble,
the final metrics of the evaluated split, the dataset as an input, the artefacts (spec, model
file, metrics, plots) and the model as a pyfunc; each member run (``member-<m>``, tagged with
``mlflow.parentRunId``) holds that member's seed streams and its own learning curves.
Every run is tagged with its owner process (:func:`~pesnet.tracking.orphans.owner_tags`);
starting a session first closes the runs a dead process left RUNNING in the experiment
(:func:`~pesnet.tracking.orphans.close_orphans`).

Every method raises :class:`~pesnet.tracking.store.TrackingError` when MLflow fails, and
remembers the first failure in :attr:`TrackingSession.broken`; callers decide whether that
stops them (the pipeline keeps training and writes its model locally).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from pesnet import __version__
from pesnet.tracking import store
from pesnet.tracking.orphans import close_orphans, owner_tags
from pesnet.tracking.store import TrackingError

#: Tag marking a pipeline's parent run (``pesnet runs`` lists these).
ROLE_TAG = "pesnet.role"
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def member_metrics(record, m: int) -> dict[str, float]:
    """Learning-curve values of member ``m`` in an EpochRecord (eV/atom, eV/Å)."""
    return {
        "train_loss": float(record.train_loss[m]),
        "train_energy_rmse": float(record.train_energy_rmse[m]),
        "train_force_rmse": float(record.train_force_rmse[m]),
        "val_loss": float(record.val_loss[m]),
        "val_energy_rmse": float(record.val_energy_rmse[m]),
        "val_force_rmse": float(record.val_force_rmse[m]),
        "learning_rate": float(record.learning_rate[m]),
    }


def ensemble_metrics(record) -> dict[str, float]:
    """Per-epoch values of the parent run: members' mean RMSEs, the ensemble mean's
    validation MAEs, the largest learning rate and how many members still train."""
    return {
        "train_energy_rmse": float(np.mean(record.train_energy_rmse)),
        "train_force_rmse": float(np.mean(record.train_force_rmse)),
        "val_energy_rmse": float(np.mean(record.val_energy_rmse)),
        "val_force_rmse": float(np.mean(record.val_force_rmse)),
        "val_energy_mae": float(record.val_energy_mae_ensemble),
        "val_force_mae": float(record.val_force_mae_ensemble),
        "learning_rate": float(np.max(record.learning_rate)),
        "active_members": float(np.sum(record.active)),
        "epoch_seconds": float(record.seconds),
    }


#: Headline test metrics (eV) also logged in meV under names that carry the unit, so the
#: dashboard's charts read like the terminal's table.
MEV_NAMES = {"energy_mae_per_atom": "energy_mae_meV_per_atom",
             "energy_rmse_per_atom": "energy_rmse_meV_per_atom",
             "force_mae": "force_mae_meV_per_A", "force_rmse": "force_rmse_meV_per_A"}


def in_mev(metrics: dict) -> dict[str, float]:
    """The :data:`MEV_NAMES` entries of ``metrics`` (eV, eV/Å) in meV under their new names."""
    return {new: 1e3 * float(metrics[old]) for old, new in MEV_NAMES.items() if old in metrics}


def group_summary(metrics: dict) -> dict[str, float]:
    """One group's metrics for the dashboard: size, errors in meV and the uncertainty
    figures (coverage, Spearman) of :func:`pesnet.potential.evaluate.group_metrics`."""
    keep = ("n_configs", "energy_coverage_1sigma", "energy_spearman", "force_coverage_1sigma",
            "force_spearman", "stress_mae_gpa", "stress_coverage_1sigma")
    return {**{k: float(metrics[k]) for k in keep if k in metrics}, **in_mev(metrics)}


def property_metrics(properties: dict) -> dict[str, float]:
    """MLflow metrics of ``properties.json``'s properties: ``property.<name>`` (the mean),
    ``….std_calibrated``, and with a reference ``….error_pct`` and ``….within_2sigma`` (0/1)."""
    out = {}
    for name, p in properties.items():
        key = f"property.{metric_safe(name)}"
        out[key] = p["mean"]
        out[f"{key}.std_calibrated"] = p["std_calibrated"]
        if p.get("reference") is not None:
            out[f"{key}.error_pct"] = p["error_pct"]
            out[f"{key}.within_2sigma"] = float(bool(p["within_2sigma"]))
    return out


def metric_safe(name: str) -> str:
    """``name`` with every character MLflow refuses in a metric key replaced by ``_``."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)[:120]


def run_name(pipeline_name: str, spec_text: str, when: float | None = None) -> str:
    """A pipeline run's MLflow name: ``quickstart-3f2a9c1-20261205-172301`` — the pipeline,
    the first 7 hex digits of the spec's SHA-256 (runs of one spec share it) and the local
    start time."""
    import hashlib

    digest = hashlib.sha256(spec_text.encode()).hexdigest()[:7]
    return f"{pipeline_name}-{digest}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _close_orphans_quietly(client, experiment_id: str) -> list[str]:
    # tidying up after a dead process must never stop a new run
    try:
        return close_orphans(client, experiment_id)
    except Exception:
        return []


def git_commit(directory) -> str | None:
    """HEAD of the git checkout holding ``directory`` (with ``-dirty`` if modified), or None."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=directory, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def source_tags(pipeline_name: str, spec_path, root, run_dir) -> dict:
    """Tags naming where a pipeline's run comes from: the pipeline, its spec file, the run
    directory and, inside a git checkout, the commit (``-dirty`` if modified)."""
    from pathlib import Path

    tags = {"pesnet.pipeline": pipeline_name, "mlflow.source.name": str(spec_path),
            "mlflow.source.type": "LOCAL", "pesnet.run_dir": str(Path(run_dir).resolve())}
    commit = git_commit(root)
    if commit:
        tags["pesnet.git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    return tags


class TrackingSession:
    """A parent run and its member runs in one store (see the module doc)."""

    def __init__(self, uri: str, client, experiment_id: str, run_id: str):
        self.uri = uri
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.member_run_ids: list[str] = []
        self.broken: str | None = None
        self.closed_orphans: list[str] = []  # runs of dead processes closed by start()
        self.status: str | None = None  # set by end()
        self._member_active: np.ndarray | None = None
        self._member_open = False
        self._logged_epochs: set[int] = set()

    # -- plumbing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, what: str):
        if self.broken:
            raise TrackingError(self.broken)
        try:
            yield
        except TrackingError as error:
            self.broken = self.broken or str(error)
            raise
        except Exception as error:  # MlflowException, requests and SQLAlchemy errors, OSError
            self.broken = f"{what} failed: {_first_line(error)}"
            raise TrackingError(self.broken) from error

    @classmethod
    def start(cls, uri: str, experiment: str, params: dict, tags: dict,
              description: str = "", parent_run_id: str | None = None) -> "TrackingSession":
        """Create the parent run in ``experiment`` (made if missing) with params and tags;
        nested under ``parent_run_id`` when given (an active-learning round, say)."""
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        if parent_run_id is not None:
            tags = {**tags, MLFLOW_PARENT_RUN_ID: parent_run_id}
        store.check_reachable(uri)
        try:
            client = store.client(uri)
            experiment_id = store.get_or_create_experiment(client, uri, experiment)
            closed = _close_orphans_quietly(client, experiment_id)
            all_tags = {ROLE_TAG: "pipeline", "pesnet.version": __version__, **owner_tags(),
                        **tags}
            if description:
                all_tags["mlflow.note.content"] = description
            run = client.create_run(experiment_id, tags={k: str(v) for k, v in all_tags.items()})
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(f"cannot start an MLflow run in {store.describe(uri)}: "
                                f"{_first_line(error)}") from error
        session = cls(uri, client, experiment_id, run.info.run_id)
        session.closed_orphans = closed
        items = [Param(k, str(v)) for k, v in params.items()]
        try:
            with session._guard("logging the spec as params"):
                for start in range(0, len(items), 100):
                    client.log_batch(session.run_id, params=items[start:start + 100])
        except TrackingError as error:
            session.end("FAILED", str(error))
            raise
        return session

    def start_child(self, run_name: str, params: dict, tags: dict) -> "TrackingSession":
        """A run nested under this one, in its experiment, with ``params`` and ``tags`` (a
        sweep's point, say); its own session."""
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        with self._guard(f"creating the run {run_name}"):
            run = self.client.create_run(
                self.experiment_id, run_name=run_name,
                tags={MLFLOW_PARENT_RUN_ID: self.run_id, **owner_tags(),
                      **{k: str(v) for k, v in tags.items()}})
            items = [Param(k, str(v)) for k, v in params.items()]
            for start in range(0, len(items), 100):
                self.client.log_batch(run.info.run_id, params=items[start:start + 100])
        return TrackingSession(self.uri, self.client, self.experiment_id, run.info.run_id)

    @property
    def run_name(self) -> str:
        return self.client.get_run(self.run_id).info.run_name

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        with self._guard("setting tags"):
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict, prefix: str = "", step: int = 0) -> None:
        """Scalar metrics of the parent run (NaN and non-numbers are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(prefix + k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float, np.number)) and np.isfinite(v)]
        with self._guard("logging metrics"):
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(self.run_id, metrics=items[start:start + _BATCH])

    # -- members ----------------------------------------------------------------------
    def start_members(self, n_members: int, seed: int, bootstrap: bool) -> None:
        """One nested run per member, with the seed streams it draws from."""
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        with self._guard("creating the member runs"):
            for m in range(n_members):
                run = self.client.create_run(
                    self.experiment_id, run_name=f"member-{m}",
                    tags={MLFLOW_PARENT_RUN_ID: self.run_id, "pesnet.role": "member",
                          "pesnet.member": str(m), **owner_tags()})
                params = [Param("member", str(m)), Param("seed", str(seed)),
                          Param("n_members", str(n_members)),
                          Param("bootstrap", str(bool(bootstrap and n_members > 1)).lower()),
                          Param("init_stream", f"SeedSequence(element seed of {seed}, "
                                               f"spawn_key=(0, {m}, 0))"),
                          Param("bootstrap_stream", f"SeedSequence({seed}, spawn_key=(0, {m}, 1))")]
                self.client.log_batch(run.info.run_id, params=params)
                self.member_run_ids.append(run.info.run_id)
        self._member_active = np.ones(n_members, bool)
        self._member_open = True

    def log_epochs(self, records, timestamps=None) -> None:
        """Per-epoch metrics of the parent (ensemble) and of every member still training at
        the start of the epoch. Epochs already logged are skipped."""
        from mlflow.entities import Metric

        parent, members = [], [[] for _ in self.member_run_ids]
        now = int(time.time() * 1000)
        for k, record in enumerate(records):
            epoch = int(record.epoch)
            if epoch in self._logged_epochs:
                continue
            stamp = int(timestamps[k] * 1000) if timestamps is not None else now
            parent += [Metric(key, value, stamp, epoch)
                       for key, value in ensemble_metrics(record).items()]
            active = self._member_active if self._member_active is not None else None
            for m, batch in enumerate(members):
                if active is None or active[m]:
                    batch += [Metric(key, value, stamp, epoch)
                              for key, value in member_metrics(record, m).items()]
            if self._member_active is not None:
                self._member_active = np.asarray(record.active, bool).copy()
            self._logged_epochs.add(epoch)
        with self._guard("logging epoch metrics"):
            for run_id, items in [(self.run_id, parent), *zip(self.member_run_ids, members)]:
                for start in range(0, len(items), _BATCH):
                    self.client.log_batch(run_id, metrics=items[start:start + _BATCH])

    def finish_members(self, metadata: dict | None = None, status: str = "FINISHED") -> None:
        """Each member's best epoch and validation loss, its element seeds; close the runs."""
        from mlflow.entities import Metric, Param

        if not self._member_open:
            return
        self._member_open = False
        metadata = metadata or {}
        best_epoch = metadata.get("best_epoch") or []
        best_loss = metadata.get("best_validation_loss") or []
        element_seeds = (metadata.get("seeds") or {}).get("elements") or {}
        now = int(time.time() * 1000)
        with self._guard("closing the member runs"):
            for m, run_id in enumerate(self.member_run_ids):
                metrics = []
                if m < len(best_epoch):
                    metrics.append(Metric("best_epoch", float(best_epoch[m]), now, 0))
                if m < len(best_loss) and np.isfinite(best_loss[m]):
                    metrics.append(Metric("best_val_loss", float(best_loss[m]), now, 0))
                params = [Param(f"element_seed.{z}", str(s)) for z, s in element_seeds.items()]
                if metrics or params:
                    self.client.log_batch(run_id, metrics=metrics, params=params)
                self.client.set_terminated(run_id, status)

    # -- inputs, artefacts, model -------------------------------------------------------
    def log_dataset(self, path, digest: str, name: str, source: str | None = None,
                    n_configs: int | None = None) -> None:
        """The dataset as an MLflow input (context ``training``) with its SHA-256 digest."""
        import warnings

        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import Dataset, DatasetInput, InputTag

        source_uri = str(Path(source or path).resolve())
        with self._guard("logging the dataset"):
            with warnings.catch_warnings():  # "can be interpreted in multiple ways": a file
                warnings.simplefilter("ignore", UserWarning)
                resolved = resolve_dataset_source(source_uri)
            dataset = MetaDataset(resolved, name=name, digest=digest[:32])
            tags = [InputTag("mlflow.data.context", "training")]
            if n_configs is not None:
                tags.append(InputTag("pesnet.n_configs", str(n_configs)))
            self.client.log_inputs(self.run_id, [DatasetInput(Dataset(**dataset.to_dict()), tags)])

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        with self._guard(f"uploading {Path(path).name}"):
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory, artifact_path: str | None = None) -> None:
        with self._guard(f"uploading {Path(directory).name}/"):
            self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_pyfunc(self, model_file, example_structure) -> tuple[str, str]:
        """Log the model as an MLflow pyfunc from code (:mod:`.pyfunc_model`) with the model
        file as its artefact, a signature and an input example. Returns (model URI, id)."""
        import mlflow
        import pandas as pd
        from mlflow.models import Model

        from pesnet.tracking import serving

        code = Path(__file__).with_name("pyfunc_model.py")
        example = pd.DataFrame({"extxyz": [serving.example_text(example_structure)]})
        requirements = [f"pesnet=={__version__}", "numpy", "scipy", "ase", "h5py", "pandas",
                        "mlflow"]
        with self._guard("logging the pyfunc model"), store.using_tracking_uri(self.uri):
            logged = mlflow.initialize_logged_model(name="model", source_run_id=self.run_id,
                                                    experiment_id=self.experiment_id,
                                                    model_type="pesnet-potential")
            info = Model.log(artifact_path=None, name="model", flavor=mlflow.pyfunc,
                             run_id=self.run_id, model_id=logged.model_id,
                             python_model=str(code), artifacts={"model": str(model_file)},
                             signature=serving.signature(), input_example=example,
                             pip_requirements=requirements)
        return info.model_uri, info.model_id

    def register(self, name: str, model_uri: str, model_id: str | None, tags: dict,
                 description: str = "") -> tuple[str, bool]:
        """Register ``model_uri`` under ``name``; returns (version, created). A version whose
        ``pesnet.model_sha256`` tag equals this model's is reused instead of duplicated."""
        from mlflow.exceptions import MlflowException

        sha = tags.get("pesnet.model_sha256")
        with self._guard(f"registering model {name!r}"), store.store_lock(self.uri), \
                store.using_tracking_uri(self.uri):  # the registry looks the model up globally
            try:
                self.client.create_registered_model(
                    name, description="pesnet ensemble potential (pyfunc: POST structures, get "
                                      "energies and forces with uncertainties)")
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            if sha:
                for version in self.client.search_model_versions(f"name='{name}'"):
                    if version.tags.get("pesnet.model_sha256") == sha:
                        return str(version.version), False
            version = self.client.create_model_version(
                name, source=model_uri, run_id=self.run_id,
                tags={k: str(v) for k, v in tags.items()}, description=description or None,
                model_id=model_id)
        return str(version.version), True

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Close any open member runs and the parent run with ``status`` (FINISHED, FAILED,
        KILLED), recording ``error`` as a tag; best effort, never raises. Only the first
        call does anything: a run ends once."""
        if self.status is not None:
            return
        self.status = status
        if self._member_open:
            self._member_open = False
            for run_id in self.member_run_ids:
                with contextlib.suppress(Exception):
                    self.client.set_terminated(run_id, status)
        if error:
            with contextlib.suppress(Exception):
                self.client.set_tag(self.run_id, "pesnet.error", error[:5000])
        with contextlib.suppress(Exception):
            self.client.set_terminated(self.run_id, status)
