"""JSON and TOML from outside the process, with a nesting limit.

Python's ``json`` and ``tomllib`` recurse once per nesting level, so ``[[[[...`` a few thousand
levels deep raises ``RecursionError`` (not a ``ValueError``): it escaped every reader's error
handling, and the control-room intake filed such a payload as an internal error (issue 11). A
document that does parse, but nests a few hundred levels, would blow up the next recursive walk
instead (canonical JSON, JCS). So every reader of outside input parses through here: nesting
deeper than ``MAX_DEPTH`` is refused as a decode error, an instance of the exception each reader
already handles (``json.JSONDecodeError`` / ``tomllib.TOMLDecodeError``, both ``ValueError``).
No format this project reads nests more than a few levels.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

MAX_DEPTH = 32


class JsonTooDeep(json.JSONDecodeError):
    """A JSON document nests deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels", "", 0)
        self.args = (self.msg,)  # no "line 1 column 1": the depth, not a place, is the fault


class TomlTooDeep(tomllib.TOMLDecodeError):
    """A TOML document nests deeper than MAX_DEPTH."""


def json_loads(data: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` (same keyword arguments), refusing nesting deeper than MAX_DEPTH."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise JsonTooDeep() from None
    if _too_deep(value):
        raise JsonTooDeep()
    return value


def toml_loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``, refusing nesting deeper than MAX_DEPTH."""
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise TomlTooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(value):
        raise TomlTooDeep(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Iterative (a recursive check would fail the way the parser did)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
