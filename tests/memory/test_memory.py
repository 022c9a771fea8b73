"""Memory handed back to the kernel (edge_agent/memory.py): each helper does what it says where the
platform has it, and is a harmless no-op where it does not."""

from __future__ import annotations

import ctypes
import mmap
import sys
from pathlib import Path

import pytest

from edge_agent import memory
from edge_agent.memory import file_mappings, release_file_pages, resident_bytes_of, trim_heap

linux_glibc = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and getattr(ctypes.CDLL(None), "gnu_get_libc_version", None)), reason="needs Linux with glibc"
)


def rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@linux_glibc
def test_trim_heap_returns_freed_heap_pages_to_the_kernel():
    # 40 MB in 16 KiB blocks (malloc'd from the heap, below the mmap threshold), then all freed but
    # the last, which pins the heap's top so free() alone cannot give any of it back.
    blocks = [bytearray(16 * 1024) for _ in range(2560)]
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
    pin = blocks.pop()
    before_free = rss_anon_kb()
    del blocks
    after_free = rss_anon_kb()
    assert trim_heap() is True
    after_trim = rss_anon_kb()
    assert pin  # alive until here
    assert before_free - after_free < 10 * 1024, "free() alone returned the blocks: the test no longer sees what trim_heap does"
    assert after_free - after_trim > 30 * 1024, f"malloc_trim returned only {after_free - after_trim} kB of 40 MB freed"


def test_trim_heap_is_a_no_op_where_the_libc_has_no_malloc_trim(monkeypatch):
    class Musl:  # a C library without malloc_trim
        pass

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Musl())
    assert trim_heap() is False


def test_no_libc_at_all_is_a_no_op(monkeypatch, tmp_path):
    def no_libc(name):
        raise OSError("no C library")

    monkeypatch.setattr(memory.ctypes, "CDLL", no_libc)
    assert trim_heap() is False
    assert release_file_pages(tmp_path / "x") == 0


def test_without_proc_nothing_is_released_and_nothing_fails(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 8192)
    assert file_mappings(path, maps=tmp_path / "no-such-maps") == []
    assert resident_bytes_of(path, smaps=tmp_path / "no-such-smaps") == 0


@linux_glibc
def test_released_pages_leave_the_rss_and_read_back_the_same(tmp_path):
    path = tmp_path / "weights.bin"
    content = bytes(range(256)) * (4 * 4096)  # 4 MiB
    path.write_bytes(content)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped[:] == content  # every page resident
        assert resident_bytes_of(path) >= len(content)
        assert release_file_pages(path) >= len(content)
        assert resident_bytes_of(path) == 0
        assert mapped[:] == content  # mapped back in from the page cache, unchanged


@linux_glibc
def test_a_writable_mapping_is_never_released(tmp_path):
    # MADV_DONTNEED on a private writable mapping would throw its changes away.
    path = tmp_path / "scratch.bin"
    path.write_bytes(bytes(2 * 4096))
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        mapped[0] = 7
        assert release_file_pages(path) == 0
        assert mapped[0] == 7
