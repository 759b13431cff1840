"""The step engine (plan → execute → state) with stand-in steps, the recorder's failure rule
and the one file lock; no MLflow store, no fit (fractions of a second)."""

from __future__ import annotations

import io

import pytest

from pesnet.errors import InputError
from pesnet.fileio import file_lock
from pesnet.pipeline.engine import (
    Context,
    Step,
    StepResult,
    StepState,
    execute,
    plan,
    run_dir_lock,
)
from pesnet.tracking.recorder import Recorder
from pesnet.tracking.store import TrackingError


class Write(Step):
    """Writes ``<name>.txt`` from ``text``; ``fail`` raises an InputError instead."""

    def __init__(self, name, text="x", fail=None, tracking=False):
        self.name, self.text, self.fail, self.tracking = name, text, fail, tracking
        self.runs = 0

    def params(self, ctx):
        return {"text": self.text}

    def outputs(self, ctx):
        return {"out": ctx.path(f"{self.name}.txt")}

    def run(self, ctx, key):
        self.runs += 1
        if self.fail is not None:
            raise self.fail
        ctx.path(f"{self.name}.txt").write_text(self.text)
        return StepResult(f"wrote {self.name}", self.outputs(ctx))


def _context(tmp_path, uri=None):
    return Context(pipeline=None, run_dir=tmp_path, state=StepState(tmp_path), tracking_uri=uri,
                   progress=False)


def test_a_step_runs_once_then_is_up_to_date_and_a_change_reruns_it(tmp_path):
    steps = [Write("a"), Write("b")]
    ctx = _context(tmp_path)
    assert plan(ctx, steps) == {"a": True, "b": True}
    done = execute(ctx, steps)
    assert [o.status for o in done.outcomes] == ["ran", "ran"] and done.failure is None
    ctx = _context(tmp_path)  # a new invocation reads state.json
    assert plan(ctx, steps) == {"a": False, "b": False}
    assert [o.status for o in execute(ctx, steps).outcomes] == ["up to date", "up to date"]
    (tmp_path / "b.txt").write_text("changed by hand")
    assert plan(_context(tmp_path), steps) == {"a": False, "b": True}
    assert [o.status for o in execute(_context(tmp_path), steps,
                                      forced={"a"}).outcomes] == ["ran", "ran"]


def test_a_failing_step_stops_the_rest_and_is_forgotten(tmp_path):
    error = InputError("bad input")
    steps = [Write("a"), Write("b", fail=error), Write("c")]
    lines = []
    done = execute(_context(tmp_path), steps,
                   report=lambda k, n, o, e: lines.append((k, n, o.status, e)))
    assert done.failure is error and [o.name for o in done.failed] == ["b"]
    assert lines == [(1, 3, "ran", None), (2, 3, "failed", error), (3, 3, "not run", None)]
    assert StepState(tmp_path).entry("b") is None and steps[2].runs == 0


def test_tracking_steps_are_off_without_a_store_and_their_failures_never_stop_the_fit(tmp_path):
    log = Write("log", fail=TrackingError("store gone"), tracking=True)
    steps = [Write("a"), log, Write("c")]
    off = execute(_context(tmp_path), steps)
    assert [o.status for o in off.outcomes] == ["ran", "off", "ran"] and log.runs == 0
    ctx = _context(tmp_path, uri="sqlite:////nowhere/mlflow.db")
    done = execute(ctx, steps, track_always=True)
    assert [o.status for o in done.outcomes] == ["up to date", "failed", "up to date"]
    assert done.failure is None and ctx.tracking_error == "store gone"


def test_one_run_per_directory(tmp_path):
    with run_dir_lock(tmp_path / "run"):
        with pytest.raises(InputError, match="in use by another `pesnet run`"):
            with run_dir_lock(tmp_path / "run"):
                pass
    with run_dir_lock(tmp_path / "run"), file_lock(tmp_path / "other.lock"):
        pass


def test_the_recorder_warns_once_and_opens_nothing_after_a_failure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a store whose directory cannot be made
    err = io.StringIO()
    recorder = Recorder(f"sqlite:///{blocker}/sub/mlflow.db", "exp", {}, {}, command="pesnet x",
                        consequence="; going on", err=err)
    assert recorder.open() is None and recorder.child("c", {}, {}) is None
    recorder.log_metrics({"m": 1.0})
    recorder.close("FINISHED")
    assert err.getvalue().count("pesnet x: warning: tracking failed: ") == 1
    assert err.getvalue().rstrip().endswith("; going on")
    assert recorder.run_id is None and "cannot create the tracking store" in recorder.error
    off = Recorder(None, "exp", {}, {})
    assert off.open() is None and off.error is None
