"""Atomic file writing: a crash or an error never leaves a half-written output.

Writers produce their output in a temporary file in the destination's directory and rename it
over the destination only when everything succeeded (``os.replace`` is atomic on POSIX when
both paths are on one file system, which the same directory guarantees).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


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
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def sha256_file(path, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes, read in blocks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()
