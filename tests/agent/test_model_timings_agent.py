"""Issue 14.3 through the real entry points: ``edge-agent models measure|show``, ``config check``,
and the agent running the variant its device's timings chose, stated in every alert."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.cli.main import main
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.events.spool import Spool
from edge_agent.vision import model_timings
from edge_agent.vision.core import ModelFiles


@pytest.fixture
def site(tmp_path):
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg"], seconds_each=0.6)
    return provision_site(tmp_path / "site", video, file_mode="every_frame")


def _record_path(site):
    return model_timings.path_in(load_config(site.config_path).device.state_dir)


def _force(site, precision: str) -> None:
    path = _record_path(site)
    timings = model_timings.load(path)
    assert timings is not None
    model_timings.save(path, dataclasses.replace(timings, families=tuple(dataclasses.replace(f, chosen=precision) for f in timings.families)))


def test_measure_records_once_and_again_only_when_the_device_changes(site, capsys):
    config = str(site.config_path)
    assert main(["models", "measure", "--config", config, "--rounds", "5"]) == 0
    out = capsys.readouterr().out
    assert "blazeface-full-range" in out and "sface-2021dec" in out and "<- auto runs this" in out
    path = _record_path(site)
    first = path.read_bytes()
    assert main(["models", "measure", "--config", config, "--if-stale", "--rounds", "5"]) == 0
    assert "up to date" in capsys.readouterr().out and path.read_bytes() == first, "a fresh record is not measured again"

    body = json.loads(first)
    body["device"]["threads"] = 7
    path.write_text(json.dumps(body))
    assert main(["models", "show", "--config", config]) == 0
    assert "stale: they were measured with threads 7" in capsys.readouterr().out
    assert main(["models", "measure", "--config", config, "--if-stale", "--rounds", "5"]) == 0
    assert "measuring: they were measured with threads 7" in capsys.readouterr().out
    assert model_timings.load(path).device.threads == load_config(site.config_path).hardware.threads

    path.write_text("{damaged")
    assert main(["models", "measure", "--config", config, "--if-stale", "--rounds", "5"]) == 0
    assert "is not a model-timings record" in capsys.readouterr().out and model_timings.load(path) is not None
    assert main(["models", "show", "--config", config]) == 0
    assert "these timings describe this device" in capsys.readouterr().out


def test_config_check_says_what_chose_the_variants(site, capsys):
    config = str(site.config_path)
    assert main(["config", "check", config]) == 0
    assert "chosen by CPU profile (no timings)" in capsys.readouterr().out
    assert main(["models", "measure", "--config", config, "--rounds", "5"]) == 0
    _force(site, "float32")
    capsys.readouterr()
    assert main(["config", "check", config]) == 0
    assert "  models        float32, chosen by this device's timings of " in capsys.readouterr().out


def _alert_precisions(site) -> list[str]:
    spool = Spool(load_config(site.config_path).spool.path)
    try:
        return [json.loads(item.payload)["model"]["precision"] for item in spool.pending()]
    finally:
        spool.close()


def test_the_agent_runs_what_the_timings_chose_and_every_alert_says_so(site, capsys, caplog):
    assert main(["models", "measure", "--config", str(site.config_path), "--rounds", "5"]) == 0
    _force(site, "float32")
    with caplog.at_level(logging.INFO):
        summary = run_agent(load_config(site.config_path))
    assert summary.alerts >= 1, summary
    assert any("precision float32, chosen by this device's timings" in r.getMessage() for r in caplog.records)
    assert set(_alert_precisions(site)) == {"float32"}


def test_a_damaged_record_is_reported_and_the_profile_decides(site, caplog):
    _record_path(site).parent.mkdir(parents=True, exist_ok=True)
    _record_path(site).write_text("[]")
    with caplog.at_level(logging.INFO):
        summary = run_agent(load_config(site.config_path))
    assert summary.alerts >= 1, summary
    assert any("is not a model-timings record" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    by_profile = ModelFiles.resolve(None, load_config(site.config_path).detector.model, "auto")
    assert set(_alert_precisions(site)) == {by_profile.identity.precision}
