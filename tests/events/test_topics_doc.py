"""The topic scheme in docs/formats/topics.md matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.events.mqtt_client import Telemetry, status_payload
from edge_agent.events.topics import KINDS, SHARED_ALERT_SUBSCRIPTION, alert_topic, parse_topic, status_topic, telemetry_topic

DOC = (Path(__file__).resolve().parents[2] / "docs" / "formats" / "topics.md").read_text(encoding="utf-8")


def test_documented_topics_and_subscription_match_the_code():
    documented = re.findall(r"^\| `lfr/v1/<device>/([a-z]+)` \|", DOC, re.M)
    assert documented == list(KINDS)
    assert f"`{SHARED_ALERT_SUBSCRIPTION}`" in DOC
    assert alert_topic("cam-01") == "lfr/v1/cam-01/alert"
    assert status_topic("cam-01") == "lfr/v1/cam-01/status"
    assert telemetry_topic("cam-01") == "lfr/v1/cam-01/telemetry"


def test_documented_status_example_is_what_the_publisher_sends():
    from datetime import datetime, timezone

    example = re.search(r"### Status.*?```json\n(.*?)\n```", DOC, re.S).group(1)
    assert status_payload("cam-01", "online", datetime(2026, 11, 22, 8, 30, 5, 123000, tzinfo=timezone.utc)).decode() == example


def test_documented_telemetry_fields_cover_the_counters():
    table = DOC.split("### Telemetry", 1)[1].split("##", 1)[0]
    documented = set(re.findall(r"`([a-z0-9_]+)`", table))
    assert set(Telemetry.__dataclass_fields__) <= documented


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "cam 01", "-cam", "x" * 65])
def test_device_ids_that_would_break_topics_are_refused(bad):
    with pytest.raises(ConfigError):
        alert_topic(bad)


def test_parse_topic():
    assert parse_topic("lfr/v1/cam-01/alert") == ("cam-01", "alert")
    assert parse_topic("lfr/v1/cam-01/alert/x") is None
    assert parse_topic("lfr/v2/cam-01/alert") is None
    assert parse_topic("lfr/v1/+/alert") is None
