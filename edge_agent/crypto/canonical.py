"""Canonical JSON for everything that is signed or hashed.

Signatures cover bytes, not objects, so signer and verifier must agree on a single encoding.
Every NEW format version uses :func:`jcs`, RFC 8785 (JSON Canonicalization Scheme): keys sorted
by UTF-16 code units, no insignificant whitespace, UTF-8, numbers as ECMAScript writes them,
integers within +-(2^53-1). A JavaScript, Go or Java verifier reproduces it with a stock library.
:func:`canonical_json` (sorted keys, Python's shortest ``repr`` for floats) is the older encoding,
kept only to write and verify the format versions that were defined with it.
Anything that is not plain JSON data (bytes, numpy arrays and scalars, sets, non-string keys) is
refused rather than coerced, so two parties can never sign "the same" object as different bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import rfc8785

from edge_agent.errors import EdgeAgentError
from edge_agent.safe_load import json_loads

MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 / I-JSON: integers beyond this are not exact in every reader


class CanonicalJsonError(EdgeAgentError):
    """A value cannot be encoded canonically (it is not plain JSON data)."""


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` (dict/list/str/int/float/bool/None only) as canonical UTF-8 JSON bytes."""
    _check(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def jcs(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``obj`` (dict/list/str/int/float/bool/None only).

    Uses the ``rfc8785`` package (Trail of Bits): ECMAScript number formatting is subtle enough
    that a well-tested implementation beats ours; tests/interop checks it against an independent one."""
    _check(obj, "$")
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise CanonicalJsonError(f"value cannot be encoded by RFC 8785: {exc}", "use integers within +-(2^53-1) and finite numbers") from None


class DuplicateKey(CanonicalJsonError):
    """A JSON object names the same member twice (two programs could read it two ways)."""


def loads_strict(data: bytes, on_error: Callable[[str, str], Exception] | None = None) -> Any:
    """Parse UTF-8 JSON refusing what a canonical encoding never contains and readers disagree on:
    duplicate member names, NaN/Infinity, invalid UTF-8. ``on_error(message, hint)`` makes the
    caller's own error type (CanonicalJsonError by default; DuplicateKey for a repeated member)."""

    def fail(message: str, hint: str, duplicate: bool = False) -> Exception:
        if on_error is not None:
            return on_error(message, hint)
        return (DuplicateKey if duplicate else CanonicalJsonError)(message, hint)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise fail(f"duplicate JSON key {key!r}", "a document with repeated keys could be read two ways; rejected", True)
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise fail(f"JSON constant {name} is not allowed", "numbers must be finite")

    try:
        return json_loads(bytes(data).decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)  # nesting limited
    except UnicodeDecodeError:
        raise fail("payload is not UTF-8", "the sender must send UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise fail(f"payload is not valid JSON: {exc.msg}", "the sender must send JSON") from None


def is_jcs(data: bytes, obj: Any) -> bool:
    """True when ``data`` is exactly the RFC 8785 encoding of ``obj`` (what new formats require).
    A parsed value JCS cannot encode at all (an integer beyond 2^53) is simply not canonical: a
    receiver refuses it with its own error, never lets CanonicalJsonError escape (fuzz finding)."""
    try:
        return jcs(obj) == bytes(data)
    except CanonicalJsonError:
        return False


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if type(value) is int:
        return
    if type(value) is float:
        if not math.isfinite(value):
            raise CanonicalJsonError(f"{where} is {value}, which JSON cannot carry", "use a finite number or null")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"{where} has a non-string key {key!r}", "use string keys only")
            _check(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    raise CanonicalJsonError(
        f"{where} is a {type(value).__name__}, not plain JSON data",
        "convert it explicitly (e.g. float(x), x.isoformat(), base64 for bytes) before signing or hashing",
    )


def format_utc(moment: datetime) -> str:
    """The one timestamp form in signed documents: ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CanonicalJsonError(f"timestamp {moment!r} has no time zone", "pass a timezone-aware UTC datetime")
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_utc(text: str, name: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp that states UTC (``Z`` or ``+00:00``); anything else is refused."""
    if not isinstance(text, str) or not (text.endswith("Z") or text.endswith("+00:00")):
        raise CanonicalJsonError(f"{name} {text!r} is not a UTC ISO 8601 timestamp", "write it like 2026-11-22T08:00:00Z")
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise CanonicalJsonError(f"{name} {text!r} is not a valid ISO 8601 timestamp", "write it like 2026-11-22T08:00:00Z") from None
    return moment.astimezone(timezone.utc)
