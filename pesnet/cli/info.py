"""``pesnet info dataset.h5``: print a dataset's summary."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="summarise a dataset file")
    parser.add_argument("dataset", type=Path, help="pesnet dataset (.h5)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.data.summary import summarize

    print(summarize(args.dataset).format())
    return 0
