"""Issue 10.8 through the agent: a forged package pushed to a running site never replaces the good one."""

from __future__ import annotations

import json

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video


def test_a_forged_push_is_refused_audited_and_the_installed_watchlist_keeps_matching(tmp_path):
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg"], seconds_each=1.0)
    site = provision_site(tmp_path, video, file_mode="every_frame")
    config = load_config(site.config_path)
    pushed = config.watchlist.package
    first = run_agent(config)
    assert first.alerts == 1 and not pushed.exists(), "the good package was installed and its pushed copy destroyed"
    installed = (config.device.state_dir / "watchlist" / "watchlist.eawl").read_bytes()

    forged = bytearray(installed)
    forged[-100] ^= 0x01  # right magic and version, one bit of the ciphertext changed
    pushed.write_bytes(bytes(forged))
    config.spool.path.unlink()  # a fresh spool, so the second run's alert is counted on its own
    second = run_agent(config)

    assert second.alerts == 1, "matching went on with the installed watchlist"
    assert (config.device.state_dir / "watchlist" / "watchlist.eawl").read_bytes() == installed
    records = [json.loads(line) for line in (config.device.state_dir / "audit.log").read_text().splitlines()]
    refused = [r["details"] for r in records if r["kind"] == "watchlist_refused"]
    assert [(d["source"], d["reason"]) for d in refused] == [(str(pushed), "PackageTampered")]
    loads = [r["details"]["source"] for r in records if r["kind"] == "watchlist_loaded"]
    assert loads == [str(pushed), "installed"]
