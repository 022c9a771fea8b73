"""A live control room for browser tests and the console benchmark: the console served by a real
uvicorn on a free loopback port, the alert listener and fleet monitor on the real Mosquitto, a
test device publishing through the real AlertPublisher, and headless Chromium from Debian."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditLog
from edge_agent.control_room.accounts import AccountBook
from edge_agent.control_room.fleet import FleetBook, FleetMonitor
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.receipting import ReceiptIssuer
from edge_agent.control_room.local_room import local_intake, sample_deployment
from edge_agent.control_room.references import ReferenceBook, seal_references
from edge_agent.control_room.store import AlertStore
from edge_agent.control_room.web.app import ConsoleConfig, create_app
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_client import AlertPublisher, Telemetry
from edge_agent.events.mqtt_connection import Backoff
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import Candidate
from edge_agent.events.spool import Spool
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, free_port
from edge_agent.identity.registry import DeviceRegistry

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,900")
PASSWORD = "correct horse battery staple"
MODEL = {"detector_sha256": "d" * 64, "aligner": "arcface5/v1", "embedder_sha256": "e" * 64, "precision": "int8"}
DEPLOYMENT = "DEP-CONSOLE-1"
DEVICE = "cam-01"


def browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install {package})"
    return None


def chromium(downloads: Path | None = None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="edge-agent-chromium-")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver._edge_agent_profile = profile  # removed by close_chromium
    return driver


def close_chromium(driver) -> None:
    profile = getattr(driver, "_edge_agent_profile", None)
    driver.quit()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class LiveRoom:
    url: str
    store: AlertStore
    audit_path: Path
    device_spool: Spool
    outbox: AlertOutbox
    device_audit_path: Path  # the test device's own audit log: receipts and decisions come back there
    adjudicated: list = field(default_factory=list)  # what the on_adjudicated hook was handed
    _stop: list = field(default_factory=list)

    def raise_alert(self, jpeg: bytes, score: float = 0.81, subject: str = "subj-obama") -> str:
        decision = MatchDecision(subject, "wanted_by_court", score, 0.64, (Candidate(subject, score), Candidate("subj-other", 0.41)), (40, 30, 160, 170))
        return self.outbox.raise_alert(decision, jpeg, datetime.now(timezone.utc)).event_id

    def close(self) -> None:
        for stop in reversed(self._stop):
            stop()


def start_live_room(workdir: Path, mosquitto, messaging_env, store_location: str | None = None, reference_images: list[bytes] = ()) -> LiveRoom:
    """Console + listener + fleet monitor + one test device, all on loopback. ``close()`` stops all."""
    stops: list = []
    store = AlertStore(store_location or workdir / "alerts.db")
    stops.append(store.close)
    audit_path = workdir / "control-room-audit.log"
    audit = AuditLog.open(audit_path, None, "control-room:test")
    stops.append(audit.close)
    cr_key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    authority = Ed25519PrivateKey.generate()
    intake = local_intake(DeviceRegistry.load(messaging_env.registry_path), cr_key, store, authority,
                          [sample_deployment(authority, DEPLOYMENT, (DEVICE, "cam-02", "cam-03"))], audit)
    if reference_images:
        refs = workdir / "refs.json"
        refs.write_bytes(seal_references(DEPLOYMENT, [("subj-obama", i, date(2024, 5, 1), img) for i, img in enumerate(reference_images)],
                                         cr_key.public_key()))
        ReferenceBook(store.db).import_file(refs, cr_key, audit)
    accounts = AccountBook(store.db)
    for name, role in (("vera", "viewer"), ("adam", "adjudicator"), ("suki", "supervisor")):
        accounts.create(name, role, PASSWORD, "test", datetime.now(timezone.utc))

    group = f"console-{uuid.uuid4().hex[:8]}"
    issuer = ReceiptIssuer.from_key_file(messaging_env.receipt_key, "control-room", store)
    listener = AlertListener(mosquitto.broker_config(CONTROL_ROOM_USER), intake, client_id=group, session_expiry_s=300,
                             backoff=Backoff(0.05, 0.5), share_group=group, receipts=issuer).start()
    stops.append(lambda: listener.stop(end_session=True))
    if not listener.subscribed.wait(10):
        raise RuntimeError(f"listener did not subscribe: {listener.last_error}")
    fleet = FleetMonitor(mosquitto.broker_config(CONTROL_ROOM_USER), FleetBook(store.db)).start()
    stops.append(fleet.stop)
    if not fleet.subscribed.wait(10):
        raise RuntimeError("fleet monitor did not subscribe")

    adjudicated: list = []

    def on_adjudicated(alert, decision) -> None:
        """As ``control-room serve --listen`` wires it: the decision goes back to the device, signed."""
        adjudicated.append((alert, decision))
        listener.notify_adjudication(decision.event_id, decision.decision, decision.engaged, decision.at, decision.reviewer)

    app = create_app(ConsoleConfig(store, audit, cr_key, intake.deployments, on_adjudicated=on_adjudicated))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="off"))
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()

    def stop_server() -> None:
        server.should_exit = True
        thread.join(10)

    stops.append(stop_server)
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)

    spool = Spool(workdir / "device-spool.db")
    stops.append(spool.close)
    device_audit_path = workdir / "device-audit.log"
    device_audit = AuditLog.open(device_audit_path, None, f"device:{DEVICE}")
    stops.append(device_audit.close)
    telemetry = lambda: Telemetry(frames=900, faces=12, alerts=1, fps=14.8, temperature_c=61.5)  # noqa: E731 - a fixed test reading
    publisher = AlertPublisher(mosquitto.broker_config(DEVICE), DEVICE, spool, telemetry=telemetry, telemetry_interval_s=1.0,
                               backoff=Backoff(0.05, 0.3), receipt_key=load_public_key(messaging_env.receipt_pub, Ed25519PublicKey),
                               audit=device_audit).start()
    stops.append(publisher.stop)
    device_key = load_private_key(messaging_env.devices[DEVICE] / "device_ed25519.key", Ed25519PrivateKey)
    outbox = AlertOutbox(EventBuilder(DeviceContext(DEVICE, DEPLOYMENT, "wl-1", MODEL), device_key, cr_key.public_key()), spool,
                         audit=device_audit, notify=publisher.notify)
    room = LiveRoom(f"http://127.0.0.1:{port}", store, audit_path, spool, outbox, device_audit_path, adjudicated)
    room._stop = stops
    return room
