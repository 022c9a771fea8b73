"""Trusted time (issue 10.13) and retention without a broker (issue 10.12), through the real agent."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from edge_agent.agent import runner
from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.agent.trusted_time import FILE_NAME, TOLERANCE, ClockSetBack, TimeHighWater
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.events.spool import Spool


def site_config(tmp_path, seconds_each: float = 1.0):
    video = write_walk_past_video(tmp_path / "v.avi", ["astronaut_collins.jpg"], seconds_each=seconds_each)
    site = provision_site(tmp_path, video, file_mode="every_frame")
    return load_config(site.config_path)


def audit_kinds(config) -> list[str]:
    return [json.loads(line)["kind"] for line in (config.device.state_dir / "audit.log").read_text().splitlines()]


def test_high_water_mark_refuses_a_clock_set_back_beyond_the_tolerance(tmp_path):
    t = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    TimeHighWater.open(tmp_path, None, t)
    assert json.loads((tmp_path / FILE_NAME).read_text())["at"] == "2026-11-22T08:00:00.000Z"
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600
    TimeHighWater.open(tmp_path, None, t - TOLERANCE + timedelta(seconds=1))  # small steps back are NTP, not tampering
    with pytest.raises(ClockSetBack, match="set back") as err:
        TimeHighWater.open(tmp_path, None, t - timedelta(days=3))
    assert "3.0 days before 2026-11-22T08:00:00.000Z" in err.value.message and "NTP" in err.value.hint
    # the audit log's last time counts even when the mark file is lost
    (tmp_path / FILE_NAME).unlink()
    with pytest.raises(ClockSetBack, match="audit log"):
        TimeHighWater.open(tmp_path, t + timedelta(hours=1), t)


def test_the_agent_does_not_start_matching_with_its_clock_set_back(tmp_path):
    config = site_config(tmp_path)
    run_agent(config)  # the first run marks the time
    back = datetime.now(timezone.utc) - timedelta(days=2)
    with pytest.raises(ClockSetBack, match="clock was set back"):
        run_agent(config, clock=lambda: back)
    assert [k for k in audit_kinds(config) if k != "checkpoint"][-1] == "clock_set_back"
    # with the clock right again it runs
    assert run_agent(config).stopped_because == "source ended"


def test_a_clock_stepped_back_while_running_stops_matching(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RETENTION_CHECK_S", 0.0)
    config = site_config(tmp_path, seconds_each=2.0)
    now = datetime.now(timezone.utc)
    calls = iter(range(100_000))
    clock = lambda: now if next(calls) < 8 else now - timedelta(days=1)  # noqa: E731
    with pytest.raises(ClockSetBack):
        run_agent(config, clock=clock)
    assert "clock_set_back" in audit_kinds(config)


def test_spool_retention_runs_with_no_broker_configured(tmp_path):
    """Issue 10.12: purge_expired ran only while connected: offline devices kept alert data past 31 days."""
    config = site_config(tmp_path)
    assert config.mqtt is None
    old = datetime.now(timezone.utc) - timedelta(days=config.spool.max_age_days + 5)
    with Spool(config.spool.path, clock=lambda: old) as spool:
        spool.append(lambda seq: (str(uuid.uuid4()), b"an old undelivered alert"))
    run_agent(config)
    with Spool(config.spool.path) as spool:
        assert spool.stats().depth == 0 and spool.stats().dropped_retention == 1
    records = [json.loads(line) for line in (config.device.state_dir / "audit.log").read_text().splitlines()]
    assert [r["details"]["reason"] for r in records if r["kind"] == "spool_dropped"] == ["retention"]
