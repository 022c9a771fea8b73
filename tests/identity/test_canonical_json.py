"""The one canonical JSON encoding every signature and hash relies on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from edge_agent.crypto.canonical import CanonicalJsonError, canonical_json, format_utc, parse_utc


def test_golden_encoding():
    obj = {"b": [1, 2.5, 0.1, True, None], "a": "é", "c": {"z": 1e-07, "y": 1.0}}
    assert canonical_json(obj) == '{"a":"é","b":[1,2.5,0.1,true,null],"c":{"y":1.0,"z":1e-07}}'.encode("utf-8")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), b"x", np.float32(1.0), np.zeros(2), {1: "a"}, {"a": {1, 2}}])
def test_refuses_non_json(bad):
    with pytest.raises(CanonicalJsonError):
        canonical_json({"v": bad} if not isinstance(bad, dict) else bad)


def test_utc_timestamps():
    t = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    assert format_utc(t) == "2026-11-22T08:00:00Z"
    assert format_utc(t.astimezone(timezone(timedelta(hours=1)))) == "2026-11-22T08:00:00Z"
    assert parse_utc("2026-11-22T08:00:00Z") == t
    with pytest.raises(CanonicalJsonError):
        format_utc(datetime(2026, 1, 1))
    with pytest.raises(CanonicalJsonError):
        parse_utc("2026-11-22T08:00:00+01:00")
    with pytest.raises(CanonicalJsonError):
        parse_utc("2026-11-22T08:00:00")
