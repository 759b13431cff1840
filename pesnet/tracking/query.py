"""Recent pipeline runs of a store, as rows for the terminal (``pesnet runs``)."""

from __future__ import annotations

import time
from typing import NamedTuple

from pesnet.tracking import store
from pesnet.tracking.session import ROLE_TAG
from pesnet.tracking.store import TrackingError

_SPLITS = ("test", "validation", "all", "train")


class RunRow(NamedTuple):
    """One parent run: when, which pipeline, its status and key metrics (eV units)."""

    run_id: str
    experiment: str
    run_name: str
    status: str
    started: float  # seconds since the epoch
    split: str | None
    energy_mae: float | None  # eV/atom
    force_mae: float | None  # eV/Å
    force_coverage: float | None  # fraction within 1σ
    registered: str | None


def _final(metrics: dict):
    for split in _SPLITS:
        if f"{split}_energy_mae_per_atom" in metrics:
            return (split, metrics.get(f"{split}_energy_mae_per_atom"),
                    metrics.get(f"{split}_force_mae"),
                    metrics.get(f"{split}_force_coverage_1sigma"))
    return None, None, None, None


def recent_runs(uri: str, experiment: str | None = None, limit: int = 10) -> list[RunRow]:
    """The ``limit`` most recent pipeline runs (all experiments, or one), newest first."""
    from mlflow.entities import ViewType

    store.check_reachable(uri)
    try:
        client = store.client(uri)
        if experiment is not None:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return []
            experiments = [found]
        else:
            experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        names = {e.experiment_id: e.name for e in experiments}
        if not names:
            return []
        runs = client.search_runs(list(names), filter_string=f"tags.`{ROLE_TAG}` = 'pipeline'",
                                  order_by=["attributes.start_time DESC"], max_results=limit)
    except TrackingError:
        raise
    except Exception as error:
        raise TrackingError(f"cannot read runs from {store.describe(uri)}: {error}") from None
    rows = []
    for run in runs:
        split, energy, force, coverage = _final(run.data.metrics)
        rows.append(RunRow(run.info.run_id, names.get(run.info.experiment_id, "?"),
                           run.info.run_name or "", run.info.status,
                           (run.info.start_time or 0) / 1000, split, energy, force, coverage,
                           run.data.tags.get("pesnet.registered_model")))
    return rows


def format_runs(rows: list[RunRow]) -> str:
    """A fixed-width table: energy MAE in meV/atom, force MAE in meV/Å, 1σ coverage in %."""
    header = ("started", "pipeline", "run", "status", "split", "E MAE", "F MAE", "F in 1σ",
              "registered", "run id")
    units = ("", "", "", "", "", "meV/atom", "meV/Å", "%", "", "")
    table = [header, units]
    for r in rows:
        fmt = (lambda v, scale, spec: "" if v is None else format(scale * v, spec))  # noqa: E731
        table.append((time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)), r.experiment,
                      r.run_name, r.status, r.split or "", fmt(r.energy_mae, 1e3, ".3f"),
                      fmt(r.force_mae, 1e3, ".1f"), fmt(r.force_coverage, 100, ".0f"),
                      r.registered or "", r.run_id[:8]))
    widths = [max(len(str(row[k])) for row in table) for k in range(len(header))]
    right = {5, 6, 7}
    return "\n".join("  ".join(str(c).rjust(w) if k in right else str(c).ljust(w)
                               for k, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in table)
