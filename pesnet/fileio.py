"""Atomic file writing: a crash or an error never leaves a half-written output.

Writers produce their output in a temporary file in the destination's directory and rename it
over the destination only when everything succeeded (``os.replace`` is atomic on POSIX when
both paths are on one file system, which the same directory guarantees). One process at a time
holds a :func:`file_lock` (an exclusive ``flock``; the kernel releases it if the process dies).
A write that runs out of room (disk full, quota, file size limit; from the OS or through HDF5)
becomes one :class:`~pesnet.errors.InputError` naming the output and the free space left.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import h5py

from pesnet.errors import DataFormatError, InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is deleted and ``path`` is left untouched (if it
    existed before, it keeps its old contents).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file name")
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp",
                                   dir=directory)
    except OSError as error:
        raise InputError(f"{path}: cannot write here ({error.strerror or error})") from None
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise InputError(f"{path}: cannot write here ({error.strerror or error})") from None
    except BaseException as error:
        written = tmp.stat().st_size if tmp.exists() else 0
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        what = no_room(error)
        if what is not None:
            # HDF5 crashes (SIGSEGV) when the objects of a file it could not write are
            # deallocated, or at exit: the error keeps them (through its traceback's frames)
            # until the command line leaves without exit handlers
            _WRITES_OUT_OF_ROOM.append(error)
            where = ("" if what != _NO_ROOM[errno.ENOSPC] else f" (file system of {directory}: "
                     f"{format_bytes(shutil.disk_usage(directory).total)})")
            raise InputError(f"{path}: {what} after {format_bytes(written)}{where}; nothing "
                             "was written") from None
        raise


#: errno of a write refused for lack of room, and how to say it
_NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EFBIG: "the file outgrew the size this process may write (ulimit -f)"}
#: the errors of writes that ran out of room in this process (:func:`write_ran_out_of_room`)
_WRITES_OUT_OF_ROOM: list[BaseException] = []


def no_room(error: BaseException) -> str | None:
    """What ran out if ``error`` is a write refused for lack of room (disk full, quota, file
    size limit; from the OS, or through HDF5, which names the errno in its message), else
    None."""
    if not isinstance(error, (OSError, RuntimeError)):
        return None
    code = getattr(error, "errno", None)
    if code in _NO_ROOM:
        return _NO_ROOM[code]
    text = str(error)
    return next((what for code, what in _NO_ROOM.items() if f"errno = {code}," in text), None)


def write_ran_out_of_room() -> bool:
    """Whether an output of this process ran out of room. HDF5 then holds a file it can
    neither flush nor close and crashes (SIGSEGV) when its objects are freed or in its own
    exit handler, so the command line leaves without exit handlers
    (:func:`pesnet.cli.main.entry`)."""
    return bool(_WRITES_OUT_OF_ROOM)


def free_bytes(directory) -> int:
    """Bytes free to this user on the file system of ``directory``."""
    return shutil.disk_usage(directory).free


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest unit that keeps the number ≥ 1 (B, kB, MB, GB, TB; powers
    of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


@contextlib.contextmanager
def file_lock(path, wait: bool = True):
    """Hold an exclusive ``flock`` of the file ``path`` (created, with its directory, if
    missing) for the block. ``wait=False``: raise :class:`BlockingIOError` at once if another
    process holds it, instead of waiting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_output_path(path) -> Path:
    """Raise :class:`~pesnet.errors.InputError` unless a file can be written at ``path``.

    Commands call it before any work, so a bad ``-o`` costs nothing: ``path`` must not be a
    directory, its directory must exist (it is not created: a typo in a directory name should
    not silently make a new tree) and accept a new file, which is tried for real with a
    temporary file (permission bits alone do not tell: root, read-only mounts, ``/proc``).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist (create it first)"
        raise InputError(f"{path}: directory {parent} {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as error:
        raise InputError(f"{path}: cannot write into {parent} ({error.strerror or error})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def sha256_file(path, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes, read in blocks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()


def open_hdf5(path, kind: str, format_name: str | None = None, version: int | None = None):
    """Open an existing HDF5 file for reading: an :class:`~pesnet.errors.InputError` if it
    does not exist, a :class:`~pesnet.errors.DataFormatError` if it is not HDF5 or (with
    ``format_name``) its root does not pass :func:`check_format` (the file is closed then).
    ``kind`` names the file in the messages ("dataset", "features file", "model")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {kind.removesuffix(' file')} file")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        if "truncated file" in str(error):
            raise DataFormatError(
                f"{path}: truncated {kind} ({path.stat().st_size} bytes of the "
                f"{_stored_eof(error)} it was written with); write it again") from None
        raise DataFormatError(f"{path}: not an HDF5 file ({error})") from None
    if format_name is not None:
        try:
            check_format(f.attrs, str(path), kind, format_name, version)
        except DataFormatError:
            f.close()
            raise
    return f


def _stored_eof(error) -> str:
    """The file size HDF5 recorded, from its "truncated file" message (or "more")."""
    import re

    found = re.search(r"stored_eof = (\d+)", str(error))
    return found.group(1) if found else "more"


def check_format(attrs, where: str, kind: str, name: str, version: int) -> None:
    """Raise :class:`~pesnet.errors.DataFormatError` unless ``attrs`` (an HDF5 object's
    attributes) say format ``name`` at a ``format_version`` this pesnet reads (≤ ``version``)."""
    found = attrs.get("format")
    if not isinstance(found, str) or found != name:  # an array attribute has no truth value
        raise DataFormatError(f"{where}: not a pesnet {kind} (format attribute "
                              f"{str(found)[:60]!r})")
    try:
        found = int(attrs.get("format_version", -1))
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: damaged {kind} (format_version attribute "
                              f"{str(attrs.get('format_version'))[:60]!r})") from None
    if found > version:
        raise DataFormatError(f"{where}: {kind} format version {found} is newer than this "
                              f"pesnet supports ({version}); upgrade pesnet")
