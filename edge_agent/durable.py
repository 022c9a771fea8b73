"""Durability helpers shared by every file the agent must not lose (audit log, watchlist store, registry).

``atomic_write`` is the one way a file is replaced: a reader (or a power cut) sees the old
content or the new, never half of either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Persist a directory entry (a created, renamed or deleted file) across power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, before_replace: Callable[[], None] | None = None) -> Path:
    """Replace ``path`` with ``data``: temp file in the same directory, write, fsync, chmod ``mode``,
    rename over ``path``, fsync the directory. ``before_replace`` runs after the new bytes are safe
    on disk and before the rename (e.g. to overwrite the old content first). Raises OSError; on
    failure the temp file is removed and ``path`` is untouched (unless ``before_replace`` changed it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
