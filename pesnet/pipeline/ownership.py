"""Which spec file a run directory belongs to.

A run directory (``runs/<name>/`` by default) holds one spec's files and its ``state.json``. A
copy of a spec that keeps ``name`` would target the same directory and overwrite them (forcing
the original to retrain), so the directory records the resolved path of its spec file in
``owner.json`` and another spec file is refused before anything in the directory changes;
``--force`` does not override this, ``--run-dir`` gives the other spec its own directory.

The owner may be edited in place (only the affected steps rerun, as before). If it moved (the
recorded path no longer exists), the spec file now using the directory takes it over. A
directory without the record (made by an older pesnet) is adopted by the first spec to use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pesnet.errors import InputError
from pesnet.fileio import atomic_output

OWNER_FILE = "owner.json"


def recorded_owner(run_dir) -> Path | None:
    """The spec file recorded in ``run_dir``, or None (no record, or an unreadable one)."""
    try:
        return Path(json.loads((Path(run_dir) / OWNER_FILE).read_text())["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_file(recorded: Path, spec: Path) -> bool:
    if recorded == spec:
        return True
    try:  # the same file under another path (a symbolic link, a bind mount)
        return os.path.samefile(recorded, spec)
    except OSError:
        return False


def check_owner(run_dir, spec_path) -> None:
    """Raise :class:`InputError` if ``run_dir`` belongs to a spec file other than
    ``spec_path`` that still exists. Reads only; see :func:`claim_run_dir`."""
    recorded = recorded_owner(run_dir)
    spec = Path(spec_path).resolve()
    if recorded is None or not recorded.exists() or _same_file(recorded, spec):
        return
    shown = str(run_dir).rstrip("/")
    raise InputError(f"{shown}/ belongs to {recorded}; give this spec another name "
                     f"(name = \"...\") or pass --run-dir DIR (--force does not change this; "
                     f"to hand the directory over, delete {Path(shown) / OWNER_FILE})")


def claim_run_dir(run_dir, spec_path) -> None:
    """Check ``run_dir`` as :func:`check_owner` does, then record ``spec_path`` (resolved) as
    its owner if it is not recorded already. Call it holding the run directory's lock."""
    check_owner(run_dir, spec_path)
    spec = Path(spec_path).resolve()
    if recorded_owner(run_dir) == spec:
        return
    target = Path(run_dir) / OWNER_FILE
    with atomic_output(target, suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps({"spec": str(spec)}, indent=1) + "\n")
