"""The one watchlist package stored on a device: its file, its replacement and its wiping.

This module does files only. What may be installed is decided by ``watchlist/installed.py``
(verify fully, then install; audit every load and refusal); when a package must be destroyed by
``watchlist/retention.py``.

Only the encrypted, signed package is ever on disk; plaintext lives in memory (loader.py). Wiping
overwrites the file with random bytes, fsyncs, then unlinks it. On flash storage an overwrite is
best effort (wear levelling may keep old blocks), which is why the package is encrypted at rest in
the first place. Every wipe is written to the audit log (policing.md 4 and 15).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge_agent.audit.log import AuditLog
from edge_agent.crypto.canonical import CanonicalJsonError, parse_utc
from edge_agent.durable import atomic_write, fsync_dir
from edge_agent.errors import EdgeAgentError
from edge_agent.safe_load import json_loads
from edge_agent.watchlist.format import MAGIC, check_magic_and_version

PACKAGE_NAME = "watchlist.eawl"
TEMP_PREFIX = ".watchlist-"  # the old package's extra link while it is replaced; never an installed package


class WatchlistStoreError(EdgeAgentError):
    """The stored package cannot be written or removed."""


@dataclass(frozen=True)
class StoredSummary:
    """What can be read from a stored package's header without keys (for retention decisions only)."""

    deployment_id: str
    expires: datetime
    package_id: str


def read_summary(data: bytes) -> StoredSummary | None:
    """Header fields of a package, unverified; None if the bytes are not a readable package."""
    try:
        if data[:4] != MAGIC:
            return None
        (header_len,) = struct.unpack_from(">I", data, 5)
        header = json_loads(data[9 : 9 + header_len].decode("utf-8"))
        return StoredSummary(str(header["deployment_id"]), parse_utc(header["expires"], "expires"), str(header["package_id"]))
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError, CanonicalJsonError):
        return None


@dataclass(frozen=True)
class WatchlistStore:
    directory: Path

    @property
    def path(self) -> Path:
        return Path(self.directory) / PACKAGE_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise WatchlistStoreError(f"no watchlist is installed in {self.directory}", "install one with: edge-agent watchlist load") from None

    def install(self, package: bytes) -> Path:
        """Atomically replace the stored package (ciphertext only) with ``package``.

        Files only: the caller has verified ``package`` in full (``installed.install_verified``).
        The old package stays in place, intact, until the new one has been written, fsynced and
        renamed over it; only then are the old bytes overwritten (through a hard link taken
        before the rename). A failure at any step leaves the old package installed.
        """
        check_magic_and_version(package)
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._destroy_leftovers()
        old = directory / f"{TEMP_PREFIX}replaced"
        linked = False

        def keep_old() -> None:
            nonlocal linked
            if self.exists():
                try:
                    os.link(self.path, old)
                    linked = True
                except OSError:
                    pass  # no hard links here: the old ciphertext is unlinked by the rename, not overwritten

        try:
            atomic_write(self.path, package, 0o600, before_replace=keep_old)
        except OSError as exc:
            if linked:
                old.unlink(missing_ok=True)  # only the extra link: the installed package is untouched
            raise WatchlistStoreError(f"cannot store the watchlist in {directory}: {exc.strerror}", "check free space and permissions") from None
        if linked:
            destroy_file(old)
        return self.path

    def _destroy_leftovers(self) -> None:
        """Temporary files a crash mid-install left behind (ciphertext): overwrite and delete them."""
        for leftover in Path(self.directory).glob(".watchlist*"):  # ours and atomic_write's temporary names
            if leftover.is_file() and not leftover.is_symlink():
                destroy_file(leftover)

    def summary(self) -> StoredSummary | None:
        """Header fields of the stored package, unverified; None if there is no package or it is unreadable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return read_summary(data)

    def wipe(self, audit: AuditLog, reason: str, now: datetime, actor: str | None = None) -> bool:
        """Overwrite and delete the stored package; audit it. Returns False if nothing was stored."""
        if not self.exists():
            return False
        summary = self.summary()
        try:
            destroy_file(self.path)
        except OSError as exc:
            raise WatchlistStoreError(f"cannot wipe {self.path}: {exc.strerror}", "check permissions; the package is still encrypted at rest") from None
        details = {"reason": reason, "package": PACKAGE_NAME}
        if summary is not None:
            details.update(deployment_id=summary.deployment_id, package_id=summary.package_id)
        audit.append("watchlist_wiped", details, actor=actor, now=now)
        return True


def destroy_file(path: Path) -> None:
    """Overwrite a file with random bytes, fsync, unlink it and persist the unlink."""
    _overwrite(path)
    path.unlink()
    fsync_dir(path.parent)


def _overwrite(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as fh:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            fh.write(os.urandom(chunk))
            remaining -= chunk
        os.fsync(fh.fileno())
