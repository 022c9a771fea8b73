"""``edge-agent config check``: exit codes and output through the real entry point."""

from __future__ import annotations

from pathlib import Path

from edge_agent.cli.main import main

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "templates" / "agent.toml"


def test_config_check_valid_template(capsys):
    assert main(["config", "check", str(TEMPLATE), "--no-file-checks"]) == 0
    out = capsys.readouterr().out
    assert "valid (config format 1)" in out
    assert "profile pi5, 4 threads, delegate none" in out
    assert "picamera:0 1280x720 @ 30 fps" in out


def test_config_check_reports_key_value_and_allowed(tmp_path, capsys):
    bad = tmp_path / "agent.toml"
    bad.write_text(TEMPLATE.read_text().replace("port = 8883", "port = 0"))
    assert main(["config", "check", str(bad), "--no-file-checks"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: mqtt.port = 0: must be an integer from 1 to 65535")
    assert "  hint: fix mqtt.port" in err


def test_config_check_without_files_fails_with_file_checks(capsys):
    assert main(["config", "check", str(TEMPLATE)]) == 2
    assert "file does not exist" in capsys.readouterr().err
