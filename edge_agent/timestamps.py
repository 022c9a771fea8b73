"""The one timestamp form of every new format version: ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

UTC, always exactly three fraction digits, always ``Z``: one spelling per instant, so signed bytes
are stable and timestamps sort as text (the old forms dropped a zero fraction or wrote
``+00:00``). Older format versions keep their own forms (edge_agent.crypto.canonical.format_utc).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from edge_agent.errors import EdgeAgentError

PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
EXAMPLE = "2026-11-22T08:30:05.123Z"


class TimestampError(EdgeAgentError):
    """A timestamp is not in the one form, or is not a real UTC instant."""


def format_timestamp(when: datetime) -> str:
    """``when`` (timezone-aware) in the one form, truncated to whole milliseconds."""
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise TimestampError(f"timestamp {when!r} has no time zone", "pass a timezone-aware UTC datetime")
    when = when.astimezone(timezone.utc)
    # Not strftime: its %Y writes year 35 as "35", which the form (and parse_timestamp) refuses.
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}.{when.microsecond // 1000:03d}Z"


def parse_timestamp(text: object, name: str = "timestamp") -> datetime:
    """The UTC instant ``text`` names; anything but the one form is refused, never normalised."""
    if not isinstance(text, str) or not text.isascii() or not PATTERN.fullmatch(text):
        raise TimestampError(f"{name} {text!r} is not UTC ISO 8601 with milliseconds", f"expected e.g. {EXAMPLE}")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise TimestampError(f"{name} {text!r} is not a real date/time", "check the clock that wrote it") from None


def truncate_to_ms(when: datetime) -> datetime:
    """The instant the one form can carry (what a reader will parse back)."""
    return parse_timestamp(format_timestamp(when))
