"""Two runs side by side (``pesnet compare``): the params that differ, every final metric of
either, and the dashboard's compare-runs address.

Runs are named as ``pesnet runs`` shows them: a run id, its first characters (at least 6),
or a run name.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import NamedTuple

from pesnet.errors import InputError
from pesnet.tracking import store
from pesnet.tracking.session import ROLE_TAG
from pesnet.tracking.store import TrackingError


class Comparison(NamedTuple):
    """``runs`` the two MLflow runs; ``params`` [(key, value a, value b)] of the params that
    differ (``None`` where a run lacks one); ``metrics`` [(key, a, b)] over the union of their
    final metrics; ``url`` the dashboard's compare-runs page (for ``pesnet ui``'s address)."""

    runs: tuple
    params: list
    metrics: list
    url: str


def find_run(client, name: str):
    """The run called ``name``: an id, a unique id prefix of ≥ 6 characters, or a run name
    among the pipeline runs (the newest if several share it)."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(name)
    except MlflowException:
        pass
    experiments = [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY)]
    runs = client.search_runs(experiments, filter_string=f"tags.`{ROLE_TAG}` != ''",
                              order_by=["attributes.start_time DESC"], max_results=5000) \
        if experiments else []
    by_name = [r for r in runs if r.info.run_name == name]
    by_prefix = [r for r in runs if len(name) >= 6 and r.info.run_id.startswith(name)]
    if by_name:
        return by_name[0]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise InputError(f"run id prefix {name!r} matches {len(by_prefix)} runs; give more of it")
    raise InputError(f"no run {name!r} (a run id, its first 6+ characters or a run name, as "
                     f"`pesnet runs` lists them)")


def compare_runs(uri: str, first: str, second: str, ui: str = "http://127.0.0.1:5000"):
    """:class:`Comparison` of runs ``first`` and ``second`` of the store at ``uri``."""
    store.check_reachable(uri)
    try:
        client = store.client(uri)
        a, b = find_run(client, first), find_run(client, second)
    except (TrackingError, InputError):
        raise
    except Exception as error:
        raise TrackingError(f"cannot read runs from {store.describe(uri)}: {error}") from None
    pa, pb = a.data.params, b.data.params
    params = [(k, pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))
              if pa.get(k) != pb.get(k)]
    ma, mb = a.data.metrics, b.data.metrics
    metrics = [(k, ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))]
    ids = json.dumps([a.info.run_id, b.info.run_id], separators=(",", ":"))
    experiments = json.dumps(sorted({a.info.experiment_id, b.info.experiment_id}),
                             separators=(",", ":"))
    query = urllib.parse.urlencode({"runs": ids, "experiments": experiments})
    return Comparison((a, b), params, metrics, f"{ui.rstrip('/')}/#/compare-runs?{query}")


def _cell(value, width: int = 14) -> str:
    if value is None:
        return "—".rjust(width)
    if isinstance(value, float):
        return format(value, ".6g").rjust(width)
    text = str(value)
    return (text if len(text) <= width else text[:width - 1] + "…").rjust(width)


def format_comparison(c: Comparison) -> str:
    """The comparison as text: run names, differing params, metrics with b − a."""
    a, b = c.runs
    key_width = max([len(k) for k, _, _ in c.params + c.metrics] + [10])
    lines = [f"{'':<{key_width}}  {_cell(a.info.run_name)}  {_cell(b.info.run_name)}",
             f"{'run id':<{key_width}}  {_cell(a.info.run_id[:8])}  {_cell(b.info.run_id[:8])}",
             "", "params that differ" if c.params else "params: identical"]
    lines += [f"{k:<{key_width}}  {_cell(x)}  {_cell(y)}" for k, x, y in c.params]
    lines += ["", f"metrics (final values){'':<{max(0, key_width - 22)}}  "
                  f"{'a':>14}  {'b':>14}  {'b − a':>14}"]
    for k, x, y in c.metrics:
        diff = y - x if x is not None and y is not None else None
        lines.append(f"{k:<{key_width}}  {_cell(x)}  {_cell(y)}  {_cell(diff)}")
    lines += ["", f"compare in the dashboard (`pesnet ui`): {c.url}"]
    return "\n".join(lines)
