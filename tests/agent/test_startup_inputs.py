"""Start-up inputs an operator can get wrong (issue 11): a separately pushed deployment record whose
signature is corrupt, a capture file that is not there, and the demo in a relative folder."""

from __future__ import annotations

import base64
import io
import json

import pytest

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import check_mode, run_agent
from edge_agent.crypto.canonical import jcs
from edge_agent.demo import live
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.deployment.errors import DeploymentRefused
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.fleet.local_broker import MosquittoBroker


def _corrupt_signature(path, how: str) -> None:
    doc = json.loads(path.read_text())
    signature = bytearray(base64.b64decode(doc["authority_signature"]))
    if how == "flipped":
        signature[10] ^= 0x01
    else:  # well-formed (64 bytes) but zero
        signature = bytearray(64)
    doc["authority_signature"] = base64.b64encode(bytes(signature)).decode()
    path.write_bytes(jcs(doc) + b"\n")  # still the file's one spelling (signed-file version 2): only the signature is wrong


@pytest.mark.parametrize("how", ["flipped", "zeroed"])
def test_a_pushed_deployment_record_with_a_corrupt_signature_stops_start_up(tmp_path, how):
    video = write_walk_past_video(tmp_path / "v.avi", ["biden_2.jpg"], seconds_each=0.2)
    site = provision_site(tmp_path, video, file_mode="live")
    record_file = tmp_path / "deployment.json"
    _corrupt_signature(record_file, how)  # the record bytes are still those signed inside the watchlist
    config = load_config(site.config_path)
    with pytest.raises(DeploymentRefused, match="deployment record .*signature is not valid"):
        run_agent(config)
    records = [json.loads(line) for line in (config.device.state_dir / "audit.log").read_text().splitlines()]
    refused = [r["details"] for r in records if r["kind"] == "watchlist_refused"]
    assert refused and refused[-1]["reason"] == "DeploymentRefused" and "signature" in refused[-1]["message"]
    assert not any(r["kind"] == "watchlist_loaded" for r in records)
    assert not (config.device.state_dir / "watchlist" / "watchlist.eawl").exists()  # the pushed package was not installed


def test_a_missing_capture_file_is_named_missing_not_a_recording(tmp_path):
    missing = tmp_path / "no-such-video.avi"
    for mode, file_mode in (("LFR", "live"), ("LFR", "every_frame"), ("RFR", "every_frame")):
        with pytest.raises(ConfigError, match="does not exist") as info:
            check_mode(mode, str(missing), file_mode)
        assert "recording" not in info.value.message and str(missing) in info.value.message
    check_mode("LFR", "usb:0", "every_frame")  # cameras and streams are not files: not checked here
    check_mode("LFR", "rtsp://cam.example/stream", "every_frame")


def test_demo_in_a_relative_folder(tmp_path, monkeypatch, capsys):
    from edge_agent.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--workdir", "reldir", "--no-broker"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.count("ALERT verified") == 2, out
    assert not (tmp_path / "reldir" / "reldir").exists()
    assert (tmp_path / "reldir" / "control-room" / "alerts.db").is_file()


@pytest.fixture
def started_brokers(monkeypatch, require_mosquitto):
    brokers: list[MosquittoBroker] = []
    real_start = MosquittoBroker.start

    def start(self, *args, **kwargs):
        brokers.append(self)
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(MosquittoBroker, "start", start)
    yield brokers
    for broker in brokers:  # never leak one, whatever the test found
        if broker.proc is not None and broker.proc.poll() is None:
            broker.stop()


def _fail(*args, **kwargs):
    raise EdgeAgentError("planted failure", "test")


@pytest.mark.parametrize("where", ["write_walk_past_video", "provision_site", "load_config", "run_agent"])
def test_the_demo_stops_its_broker_on_every_error_path(tmp_path, monkeypatch, started_brokers, where):
    monkeypatch.setattr(live, where, _fail)
    with pytest.raises(EdgeAgentError, match="planted failure"):
        live.run_demo(tmp_path / "demo", io.StringIO(), use_broker=True)
    assert len(started_brokers) == 1 and started_brokers[0].proc is not None
    assert started_brokers[0].proc.poll() is not None, "the demo left its Mosquitto running"


def test_a_broker_that_never_listens_is_not_left_running(tmp_path, require_mosquitto, monkeypatch):
    from edge_agent.fleet.local_broker import BrokerUnavailable, make_messaging_env

    broker = MosquittoBroker(make_messaging_env(tmp_path / "fleet", ("cam-01",)), tmp_path / "broker")
    monkeypatch.setattr(broker, "host", "127.0.0.2")  # Mosquitto listens on 127.0.0.1 only: never reachable here
    try:
        with pytest.raises(BrokerUnavailable, match="did not listen"):
            broker.start(timeout_s=1.0)
        assert broker.proc is not None and broker.proc.poll() is not None
    finally:
        broker.stop(kill=True)
