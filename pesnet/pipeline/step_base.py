"""What every pipeline step shares: the content-hash key, the state file, the run context.

A step declares its parameters, its input files and its output files. Its *key* is the SHA-256
of (step name, pesnet version, parameters, SHA-256 of every input); ``state.json`` in the run
directory records each step's key and its outputs' digests. A step is up to date when its key
is unchanged and its outputs still exist with the recorded contents; then it is skipped. File
digests are cached by (size, mtime) so a large features file is not re-read on every run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pesnet import __version__
from pesnet.fileio import atomic_output, sha256_file
from pesnet.pipeline.spec import Pipeline

STATE_FILE = "state.json"


# -- state ---------------------------------------------------------------------------------
class StepState:
    """The run directory's ``state.json``: per step its key, output digests and information
    (e.g. the MLflow run id), plus a cache of file digests by (size, mtime)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STATE_FILE
        self.steps: dict = {}
        self.files: dict = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self.steps = dict(data.get("steps", {}))
                self.files = dict(data.get("files", {}))
            except (OSError, ValueError, AttributeError):
                self.steps, self.files = {}, {}  # a damaged state only costs a rerun

    def digest(self, path) -> str:
        path = Path(path)
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        cached = self.files.get(str(path.resolve()))
        if cached and cached[:2] == stamp:
            return cached[2]
        value = sha256_file(path)
        self.files[str(path.resolve())] = [*stamp, value]
        return value

    def entry(self, step: str) -> dict | None:
        return self.steps.get(step)

    def record(self, step: str, key: str, outputs: dict, info: dict | None = None) -> None:
        self.steps[step] = {"key": key, "outputs": {n: [str(p), self.digest(p)]
                                                    for n, p in outputs.items()},
                            "info": info or {}, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.save()

    def forget(self, step: str) -> None:
        if self.steps.pop(step, None) is not None:
            self.save()

    def save(self) -> None:
        with atomic_output(self.path, suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps({"pesnet_version": __version__, "steps": self.steps,
                                       "files": self.files}, indent=1))


# -- context -------------------------------------------------------------------------------
@dataclass
class Context:
    """What the steps share: the spec, the run directory, the state, the tracking session."""

    pipeline: Pipeline
    run_dir: Path
    state: StepState
    tracking_uri: str | None = None  # None: tracking off
    progress: bool = True
    session: object = None  # TrackingSession when tracking works
    tracking_error: str | None = None
    trained_live: bool = False  # learning curves were streamed to the session
    ran: list = field(default_factory=list)
    compute: object = None  # ComputeSpec: featurize and train on a Dask cluster (None: here)
    cluster: object = None  # pesnet.distributed Cluster, opened by the first step needing it

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def dask(self):
        """The cluster of ``compute``, started or connected to on first use."""
        if self.cluster is None:
            from pesnet.distributed.cluster import open_cluster

            c = self.compute
            self.cluster = open_cluster(c.scheduler, c.workers, c.threads_per_worker, c.retries)
        return self.cluster

    @property
    def spec(self):
        return self.pipeline.spec


class StepResult(NamedTuple):
    """A finished step: a one-line summary, its output files, information for state.json."""

    summary: str
    outputs: dict
    info: dict = {}


class Step:
    """A pipeline step (see the module doc). Subclasses define the four methods."""

    name = "step"
    tracking = False

    def params(self, ctx: Context) -> dict:
        return {}

    def inputs(self, ctx: Context) -> dict:
        return {}

    def outputs(self, ctx: Context) -> dict:
        return {}

    def run(self, ctx: Context, key: str) -> StepResult:
        raise NotImplementedError

    def key(self, ctx: Context) -> str:
        """SHA-256 of the step, pesnet's version, the parameters and the inputs' digests.
        Raises FileNotFoundError if an input does not exist yet."""
        digests = {name: ctx.state.digest(path) for name, path in self.inputs(ctx).items()}
        text = json.dumps({"step": self.name, "pesnet": __version__, "params": self.params(ctx),
                           "inputs": digests}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def up_to_date(self, ctx: Context, key: str) -> bool:
        entry = ctx.state.entry(self.name)
        if entry is None or entry.get("key") != key:
            return False
        for path, digest in entry.get("outputs", {}).values():
            try:
                if ctx.state.digest(path) != digest:
                    return False
            except OSError:
                return False
        return True
