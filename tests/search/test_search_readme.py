"""The README's search section works as written: its commands, run in order in an empty folder
with a spec, a subjects.csv, photos and footage, end in an audited search that finds the subject."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from deployment_helpers import write_spec
from search_helpers import SUBJECTS

from edge_agent.cli.main import main
from edge_agent.demo.scenes import write_walk_past_video

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> list[list[str]]:
    section = README.read_text().split("## Searching recordings", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_the_readme_search_commands_run(tmp_path, fixtures_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path / "spec.json", deployment_id="DEP-RFR-README", mode="RFR", platform="central", device_ids=["search-01"])
    (tmp_path / "photos").mkdir()
    for name in ("obama_1.jpg", "biden_1.jpg"):
        shutil.copy(fixtures_dir / "faces" / name, tmp_path / "photos" / name)
    (tmp_path / "subjects.csv").write_text(SUBJECTS)
    write_walk_past_video(tmp_path / "footage.avi", ["astronaut_collins.jpg", "obama_2.jpg"])
    commands = _commands()
    assert [c[:2] for c in commands] == [["edge-agent", "keys"], ["edge-agent", "keys"], ["edge-agent", "deployment"],
                                        ["edge-agent", "watchlist"], ["edge-agent", "search"]]
    for command in commands:
        assert main(command[1:]) == 0, command
    out = capsys.readouterr().out
    assert re.search(r"person \(track \d+\) seen 00:00:02\.\d+ to 00:00:04\.\d+", out) and "CASE-0001" in out
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "search-audit.log").read_text().splitlines()]
    assert kinds == ["watchlist_loaded", "search_run", "checkpoint"]
    audit_verify = re.search(r"`(edge-agent audit verify\s+search-audit\.log --device-pub [^`]+)`", README.read_text())
    assert audit_verify is not None
    assert main(shlex.split(audit_verify.group(1))[1:]) == 0
