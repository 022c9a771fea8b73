"""Keep LiteRT's start-up banner out of the device's logs without hiding real native errors.

LiteRT's C++ runtime prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to
file descriptor 2 the first time an interpreter is built, and no environment variable or exported
function turns it off (``TF_CPP_MIN_LOG_LEVEL`` does not reach the TFLite logger). On a body-worn
camera that line lands in the journal on every start and trains engineers to ignore stderr. So
interpreter construction runs with fd 2 redirected to an anonymous file; afterwards every captured
line except the known banners is written back to the real stderr, so warnings and errors from the
runtime are delayed by milliseconds, never lost.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BANNERS = (re.compile(rb"^INFO: Created TensorFlow Lite (XNNPACK )?delegate for CPU\.$"),)

# fd 2 is one per process: two threads building interpreters must not swap it under each other.
_REDIRECT_LOCK = threading.Lock()


def is_banner(line: bytes) -> bool:
    return any(pattern.match(line.rstrip(b"\r\n")) for pattern in BANNERS)


@contextmanager
def without_runtime_banner() -> Iterator[None]:
    """Run the block with fd 2 captured; replay everything but the banners to stderr afterwards."""
    with _REDIRECT_LOCK, tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = b"".join(line for line in capture.readlines() if not is_banner(line))
            if kept:
                os.write(2, kept)
