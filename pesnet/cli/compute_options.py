"""The Dask options shared by the commands that can compute on a cluster (``run``, ``sweep``,
``featurize``): ``--scheduler``, ``--workers`` and ``--shards``."""

from __future__ import annotations


def add_compute_arguments(parser, scheduler_help: str, shards_help: str) -> None:
    """Add ``--scheduler ADDRESS`` (``scheduler_help``), ``--workers N`` (processes of a
    local cluster) and ``--shards`` (``shards_help``) to ``parser``."""
    parser.add_argument("--scheduler", metavar="ADDRESS", help=scheduler_help)
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of a local cluster (default: one per core)")
    parser.add_argument("--shards", action="store_true", help=shards_help)
