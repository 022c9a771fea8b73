"""The live agent end to end: capture -> match -> signed alert -> Mosquitto -> verified at the control room."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.demo.live import DEMO_CALIBRATION, provision_site, run_demo
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.events.spool import Spool
from edge_agent.watchlist.errors import WatchlistExpired


def test_demo_delivers_one_verified_alert_per_watchlisted_person(tmp_path, require_mosquitto):
    out = io.StringIO()
    result = run_demo(tmp_path, out, use_broker=True)
    assert result.broker == "mosquitto", out.getvalue()
    assert result.rejected == []
    assert result.alerts_raised == 2, out.getvalue()  # two watchlisted people walk past: two alerts, not one per frame
    assert sorted(v.event_id is not None for v in result.verified) == [True, True]
    assert "WL-0001" in out.getvalue() and "WL-0002" in out.getvalue()


def test_demo_without_broker_hands_the_same_signed_payloads_to_the_intake(tmp_path):
    result = run_demo(tmp_path, io.StringIO(), use_broker=False)
    assert result.broker == "in-process"
    assert len(result.verified) == 2 and result.rejected == []


def test_demo_reading_every_frame_drops_none_and_raises_the_same_two_alerts(tmp_path):
    """What check-arm64.sh runs under emulation, where a live replay keeps only the frames qemu keeps up with."""
    out = io.StringIO()
    result = run_demo(tmp_path, out, use_broker=False, every_frame=True)
    assert "body-worn RFR" in out.getvalue() and "(0 stale frames dropped)" in out.getvalue(), out.getvalue()
    assert result.frames > 100 and result.alerts_raised == 2 and len(result.verified) == 2 and result.rejected == []


def test_an_ended_deployment_is_refused_and_its_watchlist_destroyed(tmp_path):
    now = datetime.now(timezone.utc)
    video = write_walk_past_video(tmp_path / "v.avi", ["biden_2.jpg"], seconds_each=1.0)
    site = provision_site(tmp_path, video, start=now - timedelta(hours=2), end=now + timedelta(minutes=30), file_mode="every_frame")
    config = load_config(site.config_path)
    later = now + timedelta(hours=1)
    with pytest.raises(WatchlistExpired, match="has ended"):
        run_agent(config, clock=lambda: later)
    assert not (config.device.state_dir / "watchlist" / "watchlist.eawl").exists()
    assert not (tmp_path / "incoming" / "watchlist.eawl").exists()  # the pushed copy was destroyed on import
    kinds = [json.loads(line)["kind"] for line in (config.device.state_dir / "audit.log").read_text().splitlines()]
    assert "deployment_ended" in kinds and "watchlist_wiped" in kinds
    assert not config.spool.path.exists() or Spool(config.spool.path).stats().pending == 0


def test_matching_stops_when_the_clock_passes_the_deployment_end(tmp_path, caplog):
    """A clock that crosses the end mid-run: frames after it are not matched, and a match still
    settling when the end comes is dropped rather than alerted without authority."""
    caplog.set_level(logging.WARNING, logger="edge_agent.agent.runner")
    now = datetime.now(timezone.utc)
    end = now + timedelta(minutes=30)
    video = write_walk_past_video(tmp_path / "v.avi", ["biden_2.jpg"], seconds_each=2.0)
    site = provision_site(tmp_path, video, end=end, file_mode="every_frame")
    config = load_config(site.config_path)
    calls = iter(range(10_000))
    # Start-up and the first two frames happen before the end; everything after, past it.
    clock = lambda: now if next(calls) < 4 else end + timedelta(seconds=1)  # noqa: E731
    summary = run_agent(config, clock=clock)
    assert summary.alerts == 0
    assert summary.frames > 10 and summary.faces >= 1  # the face was seen (and matched) before the end
    assert summary.people == 1
    records = [json.loads(line) for line in (tmp_path / "state" / "audit.log").read_text().splitlines()]
    counts = [r["details"] for r in records if r["kind"] == "faces_processed"]
    assert sum(c["matches_discarded_at_deployment_end"] for c in counts) == 1
    # one person walked past: the audit counts one person searched, whatever the detections
    assert sum(c["people"] for c in counts) == sum(c["people_searched"] for c in counts) == 1
    outside = sum(c["frames_outside_deployment"] for c in counts)
    assert summary.frames - 4 <= outside < summary.frames
    # the demo deployment cites the dev set's calibration (issue 13.6): the load is audited with it, and nothing warns of the provisional default
    [loaded] = [r["details"] for r in records if r["kind"] == "watchlist_loaded"]
    assert loaded["threshold_basis"] == "calibration_report" and loaded["calibrated_default"] == site.record.alert_threshold
    assert loaded["calibration_sha256"] == hashlib.sha256(DEMO_CALIBRATION.read_bytes()).hexdigest()
    assert not any("cites no calibration" in r.getMessage() for r in caplog.records)


def _recv_all(sock: socket.socket, until: bytes, timeout_s: float) -> list[bytes]:
    messages: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            messages.append(sock.recv(4096))
        except TimeoutError:
            break
        if messages[-1].startswith(until):
            break
    return messages


def test_systemd_ready_watchdog_and_clean_sigterm(tmp_path):
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg", "astronaut_collins.jpg"] * 6, seconds_each=2.0)
    site = provision_site(tmp_path, video, file_mode="live")
    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000")
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "run", "--config", str(site.config_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _recv_all(server, b"READY=1", 30)
        assert first and first[-1].startswith(b"READY=1"), first
        pings = _recv_all(server, b"never", 1.0)
        assert b"WATCHDOG=1" in pings, "the frame loop pings the watchdog"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 0, err
    assert "stopped (stopped)" in out
    records = [json.loads(line) for line in (tmp_path / "state" / "audit.log").read_text().splitlines()]
    summary = [r for r in records if r["kind"] == "session_summary"]
    assert summary and summary[-1]["details"]["stopped_because"] == "stopped"
    assert any(r["kind"] == "faces_processed" for r in records)


@pytest.mark.parametrize(
    "mode, source, file_mode, message",
    [
        ("LFR", "folder", "every_frame", "is a recording"),
        ("RFR", "usb:0", "every_frame", "is live capture"),
        ("RFR", "video", "live", "is live capture"),
        ("OIFR", "folder", "every_frame", "operator-initiated"),
    ],
)
def test_the_deployment_mode_decides_which_sources_may_be_matched(tmp_path, mode, source, file_mode, message):
    from edge_agent.agent.runner import check_mode
    from edge_agent.errors import ConfigError

    paths = {"folder": tmp_path, "video": write_walk_past_video(tmp_path / "v.avi", ["biden_2.jpg"], seconds_each=0.2)}
    with pytest.raises(ConfigError, match=message):
        check_mode(mode, str(paths.get(source, source)), file_mode)
    check_mode("RFR", str(tmp_path), "every_frame")  # a recording under RFR is allowed
    check_mode("LFR", str(paths["video"]), "live")  # a file rehearsed as a camera counts as live


def test_a_live_camera_idles_between_people_and_still_alerts_on_each(tmp_path):
    """4 s of empty scene between two watchlisted people: the agent processes only ~5 fps of it
    (battery), yet both people, who appear after the idle stretch, are alerted on."""
    import cv2

    from edge_agent.demo.scenes import background, walk_past_frames

    path = tmp_path / "patrol.avi"
    fps = 15.0
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    frames = list(walk_past_frames(["obama_2.jpg"], fps=fps, seconds_each=1.0))
    frames += [background(640, 480, 9000 + i) for i in range(int(4 * fps))]
    frames += list(walk_past_frames(["biden_2.jpg"], fps=fps, seconds_each=1.0))
    for frame in frames:
        writer.write(frame)
    writer.release()
    site = provision_site(tmp_path, path, file_mode="live")
    text = site.config_path.read_text().replace("[pipeline]\n", "[pipeline]\nidle_fps = 5.0\nidle_after_s = 1.0\n")
    site.config_path.write_text(text)
    summary = run_agent(load_config(site.config_path))
    audit = [json.loads(line) for line in (load_config(site.config_path).device.state_dir / "audit.log").read_text().splitlines()]
    raised = [(r["details"].get("subject_ref"), r["details"].get("score"), r["details"].get("match_basis")) for r in audit if r["kind"] == "alert_raised"]
    assert summary.alerts == 2, f"alerts raised: {raised}; {summary}"
    # ~3 s of the empty stretch at 5 fps instead of 15: about 30 frames skipped
    assert 20 <= summary.skipped_for_power <= 45, summary
    assert summary.frames + summary.skipped_for_power + summary.dropped_frames <= len(frames)
    session = [r for r in audit if r["kind"] == "session_summary"][-1]
    assert session["details"]["skipped_for_power"] == summary.skipped_for_power
