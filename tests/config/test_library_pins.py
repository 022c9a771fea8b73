"""The libraries in every score are checked against their exact pins (edge_agent/library_pins.py):
this install matches, and a differing version is named with what to do."""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge_agent.cli.main import main
from edge_agent.library_pins import SCORED, LibraryVersion, exact_pins, scored_versions, warnings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "templates" / "agent.toml"


def test_every_scored_library_is_pinned_exactly_in_pyproject():
    """The rule is pyproject's pins, read back from the installed metadata: one definition."""
    declared = exact_pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert set(SCORED) <= set(declared)
    assert {v.name: v.pinned for v in scored_versions()} == {name: declared[name] for name in SCORED}


def test_this_install_has_the_pinned_versions_and_config_check_says_so(capsys):
    versions = scored_versions()
    assert all(v.installed == v.pinned for v in versions) and warnings(versions) == []
    assert main(["config", "check", str(TEMPLATE), "--no-file-checks"]) == 0
    captured = capsys.readouterr()
    line = next(x for x in captured.out.splitlines() if x.strip().startswith("libraries"))
    assert all(f"{v.name} {v.installed}" in line for v in versions) and "pinned" not in line
    assert "warning" not in captured.err


def test_a_differing_version_is_named_with_its_pin_and_the_fix():
    drifted = [LibraryVersion("opencv-python-headless", "5.0.0.93", "5.1.0.95"), LibraryVersion("ai-edge-litert", "2.3.0", "2.3.0")]
    [warning] = warnings(drifted)
    assert "opencv-python-headless 5.1.0.95 is installed where 5.0.0.93 is pinned" in warning
    assert "pip install opencv-python-headless==5.0.0.93" in warning
    assert drifted[0].describe() == "opencv-python-headless 5.1.0.95 (pinned 5.0.0.93)"
    # not installed (tflite-runtime on armv7l) or not pinned here: nothing to warn of
    assert warnings([LibraryVersion("ai-edge-litert", "2.3.0", None), LibraryVersion("ai-edge-litert", None, "2.4.0")]) == []


def test_pins_are_read_from_runtime_requirements_only():
    pins = exact_pins(['ai-edge-litert==2.3.0; platform_machine != "armv7l"', "numpy>=1.26", 'foo==1.0; extra == "dev"',
                       "paho-mqtt<3,>=2.0", "bar==2.*"])
    assert pins == {"ai-edge-litert": "2.3.0"}

