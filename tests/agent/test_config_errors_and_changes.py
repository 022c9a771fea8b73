"""Issue 11 (config and directory cases) and 10.3 (config_changed) through the real agent entry points."""

from __future__ import annotations

import json
import re

import pytest

from edge_agent.agent.config import load_config
from edge_agent.agent.config_change import LAST_CONFIG, record_config_change
from edge_agent.agent.runner import run_agent
from edge_agent.audit.log import AuditLog
from edge_agent.cli.main import main
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.errors import ConfigError


@pytest.fixture
def site(tmp_path):
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg"], seconds_each=0.5)
    return provision_site(tmp_path / "site", video, file_mode="every_frame")


def _edit(site, pattern: str, replacement: str) -> None:
    text = site.config_path.read_text()
    new = re.sub(pattern, replacement, text, count=1, flags=re.M)
    assert new != text
    site.config_path.write_text(new)


def _run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "make, message",
    [
        ("config_is_dir", "is a directory, not a file"),
        ("record_is_dir", "deployment.record = '{p}': is a directory, not a file"),
        ("state_dir_is_file", "device.state_dir = '{p}': is a file, not a directory"),
        ("package_is_dir", "watchlist.package = '{p}': is a directory, not a file"),
    ],
)
def test_misplaced_files_are_errors_with_hints_not_tracebacks(site, capsys, make, message):
    config = site.config_path
    if make == "config_is_dir":
        target = config.parent
        code, err = _run_cli(capsys, "run", "--config", str(target))
    else:
        key = {"record_is_dir": "record", "state_dir_is_file": "state_dir", "package_is_dir": "package"}[make]
        target = site.workdir / f"misplaced-{key}"
        if make == "state_dir_is_file":
            target.write_text("not a directory")
        else:
            target.mkdir()
        _edit(site, rf'^{key} = ".*"$', f'{key} = "{target}"')
        code, err = _run_cli(capsys, "run", "--config", str(config))
    assert code == 2, err
    assert err.startswith("error: ") and "\n  hint: " in err and "Traceback" not in err
    assert message.format(p=target) in err
    code, err = _run_cli(capsys, "config", "check", str(config if make != "config_is_dir" else target))
    assert code == 2 and message.format(p=target) in err


def test_a_state_dir_replaced_by_a_file_after_validation_is_a_config_error(site):
    config = load_config(site.config_path)
    config.device.state_dir.rmdir() if config.device.state_dir.is_dir() else None
    config.device.state_dir.write_text("a file now")
    with pytest.raises(ConfigError, match="is a file, not a directory") as info:
        run_agent(config)
    assert "device.state_dir" in info.value.hint


def _changes(state_dir) -> list[dict]:
    lines = (state_dir / "audit.log").read_text().splitlines()
    return [r["details"] for r in map(json.loads, lines) if r["kind"] == "config_changed"]


def test_the_agent_audits_a_config_whose_hash_differs_from_the_last_run(site):
    first = load_config(site.config_path)
    run_agent(first)
    state = first.device.state_dir
    [initial] = _changes(state)
    assert initial["sha256"] == first.sha256 and initial["previous_sha256"] is None and initial["changed"] == []

    _edit(site, r"^alert_cooldown_s = .*$", "alert_cooldown_s = 30.0")
    second = load_config(site.config_path)
    run_agent(second)
    changes = _changes(state)
    assert len(changes) == 2
    assert changes[1] == {"path": str(site.config_path), "sha256": second.sha256, "previous_sha256": first.sha256,
                          "changed": ["pipeline.alert_cooldown_s"]}
    assert oct((state / LAST_CONFIG).stat().st_mode & 0o777) == "0o600"


def test_same_config_again_writes_nothing_and_a_torn_state_file_counts_as_unknown(site, tmp_path):
    config = load_config(site.config_path)
    state = tmp_path / "state"
    state.mkdir()
    with AuditLog.open(state / "audit.log", None, "device:demo-bwv-01") as audit:
        assert record_config_change(config, state, audit)
        assert not record_config_change(config, state, audit), "same bytes: no record"
        (state / LAST_CONFIG).write_text('{"sha256": "ab')  # torn by a crash
        assert record_config_change(config, state, audit)
    assert [c["previous_sha256"] for c in _changes(state)] == [None, None]
