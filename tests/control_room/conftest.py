"""Fixtures for the messaging tests: fixed keys, an event builder, and the real Mosquitto broker."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import messaging_env, mosquitto  # noqa: E402,F401  (fixtures re-exported)
