"""Entry point of the ``pesnet`` console script.

Each command lives in its own module of :mod:`pesnet.cli` exposing
``register(subparsers)``, which adds a sub-parser whose ``func(args) -> int`` does the work.
Errors a user can cause (:class:`pesnet.errors.PesnetError`) become one line on stderr and
exit code 1; argument errors exit 2 (argparse); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pesnet import __version__
from pesnet.errors import PesnetError

#: Command modules, in the order ``pesnet --help`` lists them.
COMMAND_MODULES = [
    "pesnet.cli.generate",
    "pesnet.cli.ingest",
    "pesnet.cli.info",
    "pesnet.cli.featurize",
    "pesnet.cli.train",
    "pesnet.cli.evaluate",
    "pesnet.cli.predict",
    "pesnet.cli.run",
    "pesnet.cli.active_learn",
    "pesnet.cli.sweep",
    "pesnet.cli.serve",
    "pesnet.cli.ui",
    "pesnet.cli.runs",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pesnet",
        description="Fit ensemble neural-network potentials with uncertainty.",
    )
    parser.add_argument("--version", action="version", version=f"pesnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PesnetError as error:
        print(f"pesnet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pesnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
