"""Issue 10.7: any subject_ref the watchlist builder accepts is alerted end to end.

Before the one rule, the builder accepted a '/' the event schema refused: the first match on such
a subject raised inside the spool and that subject was never alerted. Here the builder is given
references at the edges of the rule (64 characters, every allowed punctuation mark), the real
agent runs on a video of both people, and the control-room intake verifies both alerts.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from control_room_helpers import AuditRecorder

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.intake import AlertIntake
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.deployment.record import SignedDeployment
from edge_agent.demo.live import DEVICE_ID, provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.errors import ConfigError
from edge_agent.events.spool import Spool
from edge_agent.events.topics import alert_topic
from edge_agent.identifiers import SUBJECT_REF, check_subject_ref
from edge_agent.identity.registry import DeviceRegistry

LONGEST = ("Z9.a_b:c-" * 8)[:64]
PUNCTUATED = "case:2026.11_X-1"


def test_edge_of_rule_subject_refs_are_built_matched_and_verified(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    assert len(LONGEST) == SUBJECT_REF.max_length and check_subject_ref(LONGEST) == LONGEST
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg", "biden_2.jpg"], seconds_each=1.0)
    watchlist = [(LONGEST, "wanted_by_court", "obama_1.jpg"), (PUNCTUATED, "missing_vulnerable", "biden_1.jpg")]
    site = provision_site(tmp_path, video, watchlist=watchlist, file_mode="every_frame")
    assert set(site.watchlist_subjects) == {LONGEST, PUNCTUATED}
    config = load_config(site.config_path)
    summary = run_agent(config)
    assert summary.alerts == 2
    store = AlertStore(tmp_path / "alerts.db")
    audit = AuditRecorder()
    deployments = DeploymentBook(store.db, load_public_key(site.authority_pub, Ed25519PublicKey))
    deployments.import_signed(SignedDeployment.load(site.deployment_path), datetime.now(timezone.utc), "test", audit)
    intake = AlertIntake(
        DeviceRegistry.load(site.env.registry_path), load_private_key(site.env.control_room_key, X25519PrivateKey), store, deployments, audit
    )
    with Spool(config.spool.path) as spool:
        verdicts = [intake.receive(alert_topic(DEVICE_ID), e.payload) for e in spool.pending(limit=100)]
    assert [v.reason for v in verdicts] == ["accepted", "accepted"]
    assert {intake.store.alert(v.event_id).subject_ref for v in verdicts} == {LONGEST, PUNCTUATED}


@pytest.mark.parametrize("ref", ["WL/0001", "WL 0001", "WL-\u0430", "x" * 65])
def test_the_builder_refuses_what_events_could_not_carry(tmp_path, ref):
    video = tmp_path / "unused.avi"
    with pytest.raises(ConfigError, match="invalid subject_ref"):
        provision_site(tmp_path, video, watchlist=[(ref, "suspect", "obama_1.jpg")], file_mode="every_frame")
