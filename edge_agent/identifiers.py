"""The one home of every identifier rule and shared limit (docs/formats/identifiers.md).

Device ids become MQTT topic levels, certificate CNs and file names; subject refs travel in signed
events and topics; deployment ids name authorities; actors sign audit lines. When each module kept
its own copy of a pattern they drifted (a ``/`` the watchlist accepted crashed the event schema;
``.match`` with ``$`` let ``'cam1\\n'`` through). So each rule lives here once, as an ASCII-only
pattern checked with ``fullmatch`` by one function, and every format, config reader and CLI calls
that function. Importing this module costs nothing (no OpenCV, no crypto).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from edge_agent.errors import ConfigError

#: policing.md 13: alert data (device spool, control-room store) is kept at most 31 days.
MAX_RETENTION = timedelta(days=31)
MAX_RETENTION_DAYS = MAX_RETENTION.days
#: The MQTT topic scheme version every topic starts with (docs/formats/topics.md).
TOPIC_PREFIX = "lfr/v1"
#: picamera2 formats the capture layer can convert to OpenCV BGR without a per-frame copy or with one swap.
PIXEL_FORMATS = ("RGB888", "BGR888", "XRGB8888")
#: Names no device may take: the control room's broker identity reads every device's alerts.
RESERVED_DEVICE_IDS = frozenset({"control-room"})


class IdentifierError(ConfigError):
    """A value is not a valid identifier of its kind; ``reason`` says which rule it breaks."""

    def __init__(self, message: str, hint: str, reason: str) -> None:
        super().__init__(message, hint)
        self.reason = reason


@dataclass(frozen=True)
class IdentifierRule:
    """One identifier kind: its name, its ASCII pattern (full match) and what it allows, in words."""

    name: str
    pattern: re.Pattern[str]
    allowed: str
    min_length: int
    max_length: int
    reserved: frozenset[str] = frozenset()

    def check(self, value: object) -> str:
        """Return ``value`` if it is valid, else raise IdentifierError naming the broken rule."""
        reason = self.problem(value)
        if reason is not None:
            raise IdentifierError(f"invalid {self.name} {value!r}: {reason}", f"use {self.allowed}", reason)
        return str(value)  # problem() refuses anything but a str

    def problem(self, value: object) -> str | None:
        """Why ``value`` is refused, in words, or None when it is valid."""
        if not isinstance(value, str):
            return f"it is a {type(value).__name__}, not text"
        if not value:
            return "it is empty"
        for ch in value:
            if not ch.isascii():
                return f"it contains the non-ASCII character U+{ord(ch):04X} (look-alike letters are refused)"
        if len(value) > self.max_length:
            return f"it is {len(value)} characters long (at most {self.max_length})"
        if not self.pattern.fullmatch(value):
            bad = next((ch for ch in value if not self.pattern.fullmatch("a" + ch) and not ch.isalnum()), None)
            if bad is not None:
                return f"it contains {bad!r}, which is not allowed"
            return "it must start with a letter or digit"
        if value.lower() in self.reserved:
            return f"{value.lower()!r} is reserved for the control room's identity"
        return None


DEVICE_ID = IdentifierRule(
    name="device id",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
    allowed="1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
    "(it becomes an MQTT topic level and a certificate CN; 'control-room' is reserved)",
    min_length=1,
    max_length=64,
    reserved=RESERVED_DEVICE_IDS,
)
DEPLOYMENT_ID = IdentifierRule(
    name="deployment_id",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
    allowed="1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit",
    min_length=1,
    max_length=64,
)
SUBJECT_REF = IdentifierRule(
    name="subject_ref",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"),
    allowed="an opaque reference of 1-64 ASCII letters, digits, '.', '_', ':' or '-' "
    "(a case or system reference, never a name; no '/', which would break topics and events)",
    min_length=1,
    max_length=64,
)
ACTOR = IdentifierRule(
    name="audit actor",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}"),
    allowed="1-128 ASCII letters, digits, '.', '_', ':', '@', '/' or '-', like device:cam-01 or officer:PC1234",
    min_length=1,
    max_length=128,
)
REVIEWER = IdentifierRule(
    name="reviewer",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}"),
    allowed="the reviewer's staff id: 1-64 ASCII letters, digits, '.', '_', ':', '@' or '-'",
    min_length=1,
    max_length=64,
)
CONTROL_ROOM_ID = IdentifierRule(
    name="control room id",
    pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
    allowed="1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit (the control room that signs receipts)",
    min_length=1,
    max_length=64,
)
#: Every rule, for the documentation table test (docs/formats/identifiers.md).
RULES: tuple[IdentifierRule, ...] = (DEVICE_ID, DEPLOYMENT_ID, SUBJECT_REF, ACTOR, REVIEWER, CONTROL_ROOM_ID)


def check_device_id(value: object) -> str:
    return DEVICE_ID.check(value)


def check_deployment_id(value: object) -> str:
    return DEPLOYMENT_ID.check(value)


def check_subject_ref(value: object) -> str:
    return SUBJECT_REF.check(value)


def check_actor(value: object) -> str:
    return ACTOR.check(value)


def check_reviewer(value: object) -> str:
    return REVIEWER.check(value)


def check_control_room_id(value: object) -> str:
    return CONTROL_ROOM_ID.check(value)


def check_topic_prefix(value: object) -> str:
    if value != TOPIC_PREFIX:
        raise IdentifierError(f"topic prefix {value!r} is not {TOPIC_PREFIX!r}", f"use {TOPIC_PREFIX!r} (topics format v1)", "unsupported")
    return TOPIC_PREFIX


def check_pixel_format(value: object) -> str:
    if not isinstance(value, str) or value not in PIXEL_FORMATS:
        raise IdentifierError(f"pixel format {value!r} is not supported", f"use one of {', '.join(PIXEL_FORMATS)}", "unsupported")
    return value


def check_retention(retention: timedelta, what: str = "retention") -> timedelta:
    """A retention period must be positive and at most MAX_RETENTION (policing.md 13)."""
    if not isinstance(retention, timedelta) or not timedelta(0) < retention <= MAX_RETENTION:
        raise ConfigError(
            f"{what} {retention} must be positive and at most {MAX_RETENTION_DAYS} days",
            f"policing.md: alert data is kept at most {MAX_RETENTION_DAYS} days",
        )
    return retention
