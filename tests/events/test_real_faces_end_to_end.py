"""Real faces, real models, real broker: a match becomes a verified alert; a non-match leaves no trace."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from edge_agent.events.builder import MatchDecision
from edge_agent.events.crop import crop_face_jpeg, open_crop
from edge_agent.events.mqtt_client import AlertPublisher
from edge_agent.events.mqtt_connection import Backoff
from edge_agent.events.schema import AlertEvent, parse_payload
from edge_agent.events.spool import Spool
from edge_agent.vision.image_io import read_image
from edge_agent.watchlist.gallery import Gallery

from test_mqtt_delivery import make_outbox, wait_for  # noqa: E402  (same directory)

pytestmark = pytest.mark.broker
THRESHOLD = 0.6  # about the calibrated default (policing.md 9); obama_2 scores ~0.75, others < 0.2


def _best_face(core, path):
    faces = [f for f in core.faces(read_image(path)) if f.embedding is not None]
    assert faces, f"no usable face in {path.name}"
    return max(faces, key=lambda f: f.detection.score)


def test_match_is_delivered_and_non_match_produces_nothing(core, fixtures_dir, mosquitto, messaging_env, control_room, tmp_path):
    faces = fixtures_dir / "faces"
    gallery = Gallery(_best_face(core, faces / "obama_1.jpg").embedding[None, :], ["subj-obama"])
    spool_path = tmp_path / "spool.db"
    with Spool(spool_path) as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.3)).start()
        outbox = make_outbox(messaging_env, "cam-01", spool, publisher.notify, model=core.identity.as_event_dict())
        try:
            sent = []
            for name in ("obama_2.jpg", "biden_1.jpg"):
                image = read_image(faces / name)
                face = _best_face(core, faces / name)
                decision = MatchDecision.from_search(gallery.search(face.embedding, k=3), THRESHOLD, "suspect", face.detection.box)
                if decision is not None:
                    jpeg = crop_face_jpeg(image, face.detection.box)
                    sent.append((name, outbox.raise_alert(decision, jpeg, datetime.now(timezone.utc)), jpeg))
            assert [s[0] for s in sent] == ["obama_2.jpg"]  # the other person produced no decision, hence no event
            wait_for(lambda: len(control_room.accepted()) == 1, what="the match at the listener")
            wait_for(lambda: spool.stats().depth == 0, what="spool drained")
        finally:
            publisher.stop()
        assert spool.stats().last_seq == 1  # exactly one event was ever spooled
    _, event, jpeg = sent[0]
    stored = AlertEvent.from_dict(parse_payload(control_room.store.payload(event.event_id)))
    assert stored.subject_ref == "subj-obama" and stored.score >= THRESHOLD
    # the binding plus the variant this CPU ran (x86 VNNI: float BlazeFace, int8 SFace)
    assert stored.model == {**core.identity.as_dict(), "precision": core.identity.precision}
    assert stored.model["precision"] in ("int8", "float32") or stored.model["precision"].startswith("det.")
    assert open_crop(stored.crop_sealed, control_room.key, event.event_id) == jpeg
    # Nothing of the non-matching face anywhere in the spool file.
    with sqlite3.connect(spool_path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
