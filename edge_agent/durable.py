"""Durability helpers shared by every file the agent must not lose (audit log, watchlist store)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Persist a directory entry (a created, renamed or deleted file) across power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
