"""Where the shards of a sharded features file live, and the check that they are all there.

A sharded features file (written by :mod:`.sharded_features`) is a small HDF5 file whose
per-atom and per-block arrays are virtual datasets mapping the arrays of shard files in the
directory beside it: ``features.h5`` → ``features.shards/<token>-<k>.h5``. The top file names
each shard relative to its own directory, so the run directory can be moved, copied or mounted
at another path on a worker (HDF5 resolves a relative source name against the directory of the
file holding the virtual dataset before the working directory; the ``HDF5_VDS_PREFIX``
environment variable, if set, takes precedence).

Why an explicit check: HDF5 fills the rows of a missing source file with the fill value
without an error, so a deleted shard would train on zeros. The root attribute ``shards``
records every shard (JSON list of ``{"file", "bytes", "sha256", "configs": [first, stop]}``;
``sha256``, the digest its writer took, is absent in files written before it was recorded)
and :func:`check_shards` stats each one when the features are opened (one ``stat`` per shard).
The pipeline records every shard among the featurize step's outputs (:func:`shard_files`), so
a shard edited in place, even at the same size, makes the step stale.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from pesnet.errors import DataFormatError

#: root attribute of a sharded features file listing its shards
SHARDS_ATTR = "shards"
#: a shard's file name: ``<12 hex digits of the writing run>-<6-digit shard number>.h5``
SHARD_NAME = re.compile(r"^[0-9a-f]{12}-[0-9]{6}\.h5$")
#: a shard being written (:func:`pesnet.fileio.atomic_output`'s temporary name)
SHARD_TEMP_NAME = re.compile(r"^\.[0-9a-f]{12}-[0-9]{6}\.h5\..*\.tmp$")


def shard_directory(output) -> Path:
    """The directory of the shards of the features file ``output`` (``features.h5`` →
    ``features.shards``)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shards")


def shard_name(token: str, k: int) -> str:
    """The file name of shard ``k`` written by the run ``token`` (12 hex digits)."""
    return f"{token}-{k:06d}.h5"


def shard_records(attrs) -> list[dict] | None:
    """The shard list of a features file's root attributes, or None for a plain file."""
    if SHARDS_ATTR not in attrs:
        return None
    return json.loads(attrs[SHARDS_ATTR])


def shard_files(path) -> list[tuple[Path, str | None]]:
    """(path, writer's SHA-256 or None) of every shard of the features file ``path``; empty
    for a plain file."""
    import h5py

    with h5py.File(path, "r") as f:
        records = shard_records(f.attrs) or []
    directory = Path(path).parent
    return [(directory / record["file"], record.get("sha256")) for record in records]


def check_shards(path, attrs) -> None:
    """Raise :class:`~pesnet.errors.DataFormatError` (one line naming the shard) unless every
    shard the features file ``path`` (root ``attrs``) records exists beside it with the size
    it was written with."""
    records = shard_records(attrs)
    if not records:
        return
    directory = Path(path).parent
    for record in records:
        shard = directory / record["file"]
        try:
            size = shard.stat().st_size
        except FileNotFoundError:
            raise DataFormatError(f"{path}: its shard {shard} is missing (a sharded features "
                                  f"file needs every shard beside it); featurize again") from None
        except OSError as error:
            raise DataFormatError(f"{path}: cannot read its shard {shard} "
                                  f"({error.strerror or error})") from None
        if size != int(record["bytes"]):
            raise DataFormatError(f"{path}: its shard {shard} has {size} bytes, not the "
                                  f"{record['bytes']} it was written with (truncated or "
                                  f"overwritten); featurize again")


def remove_stale_shards(output, keep=()) -> int:
    """Delete the shard files (and shards left half-written by a killed worker) in
    ``output``'s shard directory whose names are not in ``keep``; remove the directory when
    it is left empty. Returns the files deleted. Called after a features file was written,
    so the shards of the file it replaced, and of failed runs, do not pile up."""
    directory = shard_directory(output)
    if not directory.is_dir():
        return 0
    keep, removed = set(keep), 0
    for entry in directory.iterdir():
        name = entry.name
        if name not in keep and (SHARD_NAME.match(name) or SHARD_TEMP_NAME.match(name)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    with contextlib.suppress(OSError):  # not empty (something of the user's): leave it
        directory.rmdir()
    return removed
