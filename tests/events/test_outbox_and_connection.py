"""Outbox audit records, broker settings, TLS context, and reconnect backoff."""

from __future__ import annotations

import json
import random
import ssl
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditLog
from edge_agent.errors import ConfigError
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig, tls_context
from edge_agent.events.outbox import AlertOutbox, audit_spool_drop
from edge_agent.events.schema import Candidate
from edge_agent.events.spool import Spool

MODEL = {"detector_sha256": "d" * 64 + "+" + "f" * 64, "aligner": "5pt", "embedder_sha256": "e" * 64, "precision": "int8"}
JPEG = b"\xff\xd8" + bytes(range(256)) * 8 + b"\xff\xd9"


def test_alerts_and_spool_drops_are_audited_without_biometrics(tmp_path):
    key = Ed25519PrivateKey.generate()
    audit = AuditLog.open(tmp_path / "audit.jsonl", key, "device:cam-01")
    spool = Spool(tmp_path / "spool.db", max_bytes=6000, on_drop=audit_spool_drop(audit))
    builder = EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), key, X25519PrivateKey.generate().public_key())
    outbox = AlertOutbox(builder, spool, audit)
    decision = MatchDecision("subj-1", "suspect", 0.7, 0.64, (Candidate("subj-1", 0.7),), (1, 1, 20, 20))
    events = [outbox.raise_alert(decision, JPEG, datetime.now(timezone.utc)) for _ in range(4)]
    audit.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    raised = [r["details"] for r in records if r["kind"] == "alert_raised"]
    dropped = [r["details"] for r in records if r["kind"] == "spool_dropped"]
    assert [r["event_id"] for r in raised] == [e.event_id for e in events]
    assert dropped and all(d["reason"] == "size_limit" for d in dropped)
    assert sum(d["count"] for d in dropped) == spool.stats().dropped_size_limit > 0
    text = (tmp_path / "audit.jsonl").read_text()
    assert events[0].crop not in text and "crop" not in text
    spool.close()


def test_backoff_grows_with_jitter_caps_and_resets():
    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lockstep
    assert max(delays) <= 8.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_broker_config_refuses_plain_mqtt_and_missing_files(tmp_path):
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ConfigError, match="mqtts"):
        BrokerConfig.from_url("mqtt://broker:1883", tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key")
    with pytest.raises(ConfigError, match="not found"):
        BrokerConfig.from_url("mqtts://broker", tmp_path / "nope.pem", tmp_path / "c.pem", tmp_path / "c.key")
    cfg = BrokerConfig.from_url("mqtts://broker", tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key")
    assert (cfg.host, cfg.port) == ("broker", 8883)
    toml = tmp_path / "cr.toml"
    toml.write_text('[broker]\nurl = "mqtts://10.0.0.5:8884"\nca = "ca.pem"\ncert = "c.pem"\n')
    with pytest.raises(ConfigError, match=r"cr\.toml: broker\.key: is required") as info:
        BrokerConfig.from_toml(toml)
    assert info.value.hint == f"add key = ... under [broker] in {toml}"
    toml.write_text('[broker]\nurl = "mqtts://10.0.0.5:8884"\nca = "ca.pem"\ncert = "c.pem"\nkey = "c.key"\n')
    (tmp_path / "c.key").chmod(0o600)
    assert BrokerConfig.from_toml(toml).port == 8884
    with pytest.raises(ConfigError, match="cannot load broker TLS files"):
        tls_context(cfg)  # the files are not PEM


def test_tls_context_pins_the_ca_and_requires_tls12(messaging_env):
    ident = messaging_env.clients["cam-01"]
    ctx = tls_context(BrokerConfig.from_url("mqtts://127.0.0.1:8883", messaging_env.ca_cert, ident.cert, ident.key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # only the configured CA, no system store


def test_reconnect_after_a_long_outage_is_prompt():
    """Issue 11: with a 30 s cap a device came back up to 30 s after the broker did. However long
    the outage, the next attempt after the broker returns is at most RECONNECT_CAP_S away."""
    from edge_agent.events.mqtt_connection import RECONNECT_CAP_S

    assert RECONNECT_CAP_S <= 5.0
    for outage_s in (30.0, 300.0, 3600.0):
        backoff = Backoff(rng=random.Random(7))
        waited = 0.0
        while waited < outage_s:  # attempts fail while the broker is down
            waited += backoff.next_delay()
        assert backoff.next_delay() <= RECONNECT_CAP_S


def test_a_fleet_does_not_reconnect_in_one_burst():
    """1000 devices that lost the broker together come back spread out: no 100 ms slot holds more
    than 5 % of them (jitter), and all are back within the cap."""
    from edge_agent.events.mqtt_connection import RECONNECT_CAP_S

    rng = random.Random(3)
    broker_back_at = 60.0
    returns = []
    for _ in range(1000):
        backoff = Backoff(rng=random.Random(rng.random()))
        t = 0.0
        while t < broker_back_at:
            t += backoff.next_delay()
        returns.append(t - broker_back_at)
    assert max(returns) <= RECONNECT_CAP_S
    slots = [0] * (int(RECONNECT_CAP_S * 10) + 1)
    for r in returns:
        slots[int(r * 10)] += 1
    assert max(slots) <= 50
