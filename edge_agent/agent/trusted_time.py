"""A high-water mark of trusted time, so a clock set back cannot reopen an ended deployment (issue 10.13).

Watchlist expiry and the deployment window rest on the device's wall clock. A body-worn camera
whose clock is set back (a flat RTC battery, or on purpose) would otherwise match again under a
deployment that has ended, or keep alerts past their retention. The agent therefore keeps the
latest time it has seen in the state directory (``time_high_water``, advanced while it runs and
at every stop) and also trusts the time of the last record in its audit log. If the clock reads
more than ``TOLERANCE`` before that mark, at start-up or while running, the agent stops matching
with a clear error; setting the clock right (NTP) is the fix.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

from edge_agent.durable import atomic_write
from edge_agent.errors import EdgeAgentError
from edge_agent.timestamps import TimestampError, format_timestamp, parse_timestamp

log = logging.getLogger(__name__)

FILE_NAME = "time_high_water"
TOLERANCE = timedelta(minutes=5)  # NTP steps and RTC drift between runs stay well inside this
SCHEMA = "edge-agent.time-high-water/1"


class ClockSetBack(EdgeAgentError):
    """The wall clock reads earlier than time this device has already seen."""

    def __init__(self, message: str, hint: str, mark: datetime) -> None:
        super().__init__(message, hint)
        self.mark = mark


class TimeHighWater:
    def __init__(self, path: Path, mark: datetime | None, source: str) -> None:
        self.path = path
        self.mark = mark
        self._source = source

    @classmethod
    def open(cls, state_dir: Path, audit_time: datetime | None, now: datetime) -> "TimeHighWater":
        """Load the mark (the later of the file and the audit log's last record), check ``now``
        against it (raises ClockSetBack), and advance it to ``now``."""
        path = Path(state_dir) / FILE_NAME
        stored = _read(path)
        candidates = [(t, s) for t, s in ((stored, f"{path.name}"), (audit_time, "the audit log's last record")) if t is not None]
        mark, source = max(candidates, key=lambda c: c[0]) if candidates else (None, "")
        guard = cls(path, mark, source)
        guard.check(now)
        guard.advance(now)
        return guard

    def check(self, now: datetime) -> None:
        if self.mark is not None and now < self.mark - TOLERANCE:
            raise ClockSetBack(
                f"the device clock reads {format_timestamp(now)}, {_ago(self.mark - now)} before {format_timestamp(self.mark)} "
                f"({self._source}): the clock was set back, so deployment windows and expiry cannot be trusted; not matching",
                "set the device clock to the right time (enable NTP: timedatectl set-ntp true) and start the agent again",
                self.mark,
            )

    def advance(self, now: datetime) -> None:
        """Check ``now`` and raise the mark to it (best effort on disk: a full disk does not stop matching)."""
        self.check(now)
        if self.mark is not None and now <= self.mark:
            return
        self.mark = now
        self._source = FILE_NAME
        try:
            atomic_write(self.path, json.dumps({"schema": SCHEMA, "at": format_timestamp(now)}).encode() + b"\n", mode=0o600)
        except OSError as exc:
            log.warning("cannot save the time high-water mark %s: %s", self.path, exc)


def _read(path: Path) -> datetime | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return parse_timestamp(doc["at"], "at") if doc.get("schema") == SCHEMA else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, TimestampError):
        log.warning("time high-water mark %s is unreadable; using the audit log's last time", path)
        return None


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} minutes"

