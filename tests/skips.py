"""One rule for a missing external dependency (dev set, Mosquitto, PostgreSQL, Chromium)."""

from __future__ import annotations

import os

import pytest


def missing(message: str, require_env: str) -> None:
    """Skip a test whose external dependency is absent, or fail it where ``require_env`` = 1 (CI),
    so a missing dev set or broker there is a failure, never a silent skip."""
    if os.environ.get(require_env) == "1":
        pytest.fail(message)
    pytest.skip(message)
