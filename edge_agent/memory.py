"""Handing memory back to the kernel after big one-off work (issue 14: the device's peak RSS).

Two cases, each measured on the agent's process (benchmarks/memory.py):

- A model's weights live twice once its interpreter is prepared: XNNPACK packs them into memory of
  its own, and the .tflite file stays mapped, every page of it resident because packing read
  them (13.6 MB for the four models). ``release_file_pages`` drops this process's mapping of those
  pages (madvise MADV_DONTNEED on a read-only shared file mapping: the file is untouched, the page
  cache keeps the bytes, and a page the runtime reads again is mapped back in by the kernel, as
  after any reclaim). The kernel could drop them under pressure anyway; doing it now keeps them out
  of the process's RSS and makes them the first thing reclaimed.
- glibc's malloc keeps freed memory inside its heap: a 10,000-entry watchlist load frees the
  package read from its file and the entries' parsed JSON, 2.4 MB that stayed resident (25 MB
  when the load still copied the package and held its whole plaintext). ``trim_heap`` calls
  ``malloc_trim(0)``, which returns every free page in the heap, not only the top.

Both are no-ops where the platform lacks them (another libc, no /proc): they never fail the caller.
Stdlib only (ctypes), so the watchlist loader can use it without a heavy import.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MADV_DONTNEED = 4  # Linux, every architecture the agent runs on
PROC_MAPS = Path("/proc/self/maps")
PROC_SMAPS = Path("/proc/self/smaps")


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/self/maps: where a file is mapped and with which permissions."""

    start: int
    end: int
    perms: str  # e.g. "r--s"
    path: str


def _libc_function(name: str) -> Any:
    """``name`` from the C library already loaded into this process, or None where it has none
    (musl has no malloc_trim; Windows has no libc symbols to look up). A ctypes function pointer."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # TypeError: Windows, where CDLL needs a name
        return None
    return getattr(libc, name, None)


def trim_heap() -> bool:
    """Return free heap pages to the kernel (glibc ``malloc_trim(0)``); False where there is no
    such call. Cost: a walk over the heap's free chunks, about a millisecond here."""
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True


def file_mappings(path: Path, maps: Path = PROC_MAPS) -> list[Mapping]:
    """This process's mappings of ``path`` (empty where there is no /proc)."""
    target = str(Path(path).resolve())
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append(Mapping(start, end, fields[1], fields[5]))
    return found


def release_file_pages(path: Path) -> int:
    """Unmap the resident pages of every read-only mapping of ``path`` in this process; return the
    bytes of address space advised (0 where nothing was mapped or madvise is unavailable).

    Only read-only mappings are touched: a writable private mapping may hold changes that
    MADV_DONTNEED would throw away."""
    madvise = _libc_function("madvise")
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for mapping in file_mappings(path):
        if "w" in mapping.perms:
            continue
        if madvise(mapping.start, mapping.end - mapping.start, MADV_DONTNEED) == 0:
            released += mapping.end - mapping.start
    return released


def resident_bytes_of(path: Path, smaps: Path = PROC_SMAPS) -> int:
    """Resident bytes of this process's mappings of ``path`` (0 where there is no /proc): how the
    tests and benchmarks/memory.py see what ``release_file_pages`` did."""
    target = str(Path(path).resolve())
    try:
        text = smaps.read_text()
    except OSError:
        return 0
    total, inside = 0, False
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
            inside = len(fields) >= 6 and " ".join(fields[5:]) == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total

