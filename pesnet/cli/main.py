"""Entry point of the ``pesnet`` console script.

Each command lives in its own module of :mod:`pesnet.cli` exposing
``register(subparsers)``, which adds a sub-parser whose ``func(args) -> int`` does the work.
Errors a user can cause (:class:`pesnet.errors.PesnetError`) become one line on stderr and
exit code 1; argument errors exit 2 (argparse); Ctrl-C exits 130. Every command but the
servers (:data:`SERVERS`) treats SIGTERM (``kill``, ``timeout``, a batch system's walltime or
``scancel``) like Ctrl-C, so MLflow runs are closed as KILLED and half-written outputs
removed, and exits 143 (128 + 15).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading

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
    "pesnet.cli.properties",
    "pesnet.cli.predict",
    "pesnet.cli.run",
    "pesnet.cli.active_learn",
    "pesnet.cli.sweep",
    "pesnet.cli.serve",
    "pesnet.cli.ui",
    "pesnet.cli.runs",
    "pesnet.cli.compare",
]

#: Commands that keep the default SIGTERM handling: they stop their server process group
#: themselves. In every other command SIGTERM raises :class:`Terminated`.
SERVERS = {"serve", "ui"}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so whatever cleans up after Ctrl-C (closing
    MLflow runs as KILLED, removing half-written files) runs for it too."""

    def __init__(self, message: str = "terminated (SIGTERM)"):
        super().__init__(message)


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, the first SIGTERM raises :class:`Terminated` in the main thread; the
    previous handler is back afterwards and already during the clean-up, so a second SIGTERM
    ends the process as it would have before. Does nothing outside the main thread or when
    SIGTERM is ignored (``signal.signal`` would refuse, or the caller chose to ignore it)."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or \
            previous in (signal.SIG_IGN, None):
        yield
        return

    def _raise(signum, frame):
        signal.signal(signal.SIGTERM, previous)
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    guard = contextlib.nullcontext() if args.command in SERVERS else sigterm_raises()
    try:
        with guard:
            code = int(args.func(args) or 0)
            sys.stdout.flush()      # a closed pipe shows here, not in the interpreter's exit
            return code
    except PesnetError as error:
        print(f"pesnet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Terminated as error:
        print(f"pesnet {args.command}: {error}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"pesnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader left (`pesnet info ds.h5 | head -1`): like any Unix filter, stop quietly;
        # stdout goes to /dev/null so the interpreter's final flush cannot raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def entry() -> None:
    """The ``pesnet`` command: :func:`main`, then exit with its code. After an output ran out
    of room HDF5 holds a file it can neither flush nor close and crashes (SIGSEGV) in its exit
    handler: then the streams are flushed and the process leaves at once with the code. The
    same HDF5 objects, freed on the way, report their failed flushes as "exception ignored"
    tracebacks: those are dropped (the command's one-line error says it)."""
    sys.unraisablehook = _without_no_room(sys.unraisablehook)
    sys.excepthook = _without_no_room(sys.excepthook)   # Cython prints them through it too
    code = main()
    fileio = sys.modules.get("pesnet.fileio")   # not imported: nothing was written
    if fileio is not None and fileio.write_ran_out_of_room():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _without_no_room(hook):
    """``hook`` (``sys.unraisablehook`` or ``sys.excepthook``), silent for h5py objects
    whose flush was refused for lack of room as they are freed (any other error, a no-room
    one raised elsewhere included, is reported as before)."""
    def quiet(*args):
        error, tb = (args[1], args[2]) if len(args) == 3 else (args[0].exc_value,
                                                               args[0].exc_traceback)
        fileio = sys.modules.get("pesnet.fileio")
        freed_by_h5py = False
        while tb is not None:
            freed_by_h5py |= "h5py" in tb.tb_frame.f_code.co_filename
            tb = tb.tb_next
        if fileio is None or fileio.no_room(error) is None or not freed_by_h5py:
            hook(*args)
    return quiet


if __name__ == "__main__":  # pragma: no cover
    entry()
