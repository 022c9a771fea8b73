"""The README's first command: the live agent end to end on bundled material, in one process.

A fresh authority, device and control room; a signed body-worn LFR deployment whose threshold cites
the dev set's calibration shipped beside this module (``devset-calibration.json``); a watchlist of two
public-domain portraits sealed to the device; a sample video of three people walking past (two on
the watchlist, one not); a local Mosquitto with TLS and client certificates (or, when Mosquitto is
not installed, in-process delivery of the same signed payloads); and the control-room intake
printing every alert it verified. Everything lives in a temporary folder.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.agent.config import load_config
from edge_agent.agent.runner import run_agent
from edge_agent.audit.log import AuditLog
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.intake import AlertIntake, Verdict
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.receipting import ReceiptIssuer
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.demo.scenes import FIXTURE_FACES, write_walk_past_video
from edge_agent.demo.trace_check import TraceReport, check_no_trace, non_matching_templates, template_needles
from edge_agent.deployment.calibration import CalibrationCitation, read_calibration_report
from edge_agent.deployment.policy import check_calibration
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.events.spool import Spool
from edge_agent.events.topics import alert_topic
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, BrokerUnavailable, MessagingEnv, MosquittoBroker, make_messaging_env
from edge_agent.identity.keys import init_authority, load_authority_key
from edge_agent.identity.registry import DeviceRegistry
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.identity import DEFAULT_DETECTOR
from edge_agent.watchlist.build import build_watchlist, read_subjects_csv

DEVICE_ID = "demo-bwv-01"
DETECTOR = DEFAULT_DETECTOR
WATCHLIST = [  # subject_ref, category, reference photo (a different photo appears in the video)
    ("WL-0001", "wanted_by_court", "obama_1.jpg"),
    ("WL-0002", "missing_vulnerable", "biden_1.jpg"),
]
WALKERS = ["astronaut_collins.jpg", "obama_2.jpg", "biden_2.jpg"]
#: The calibration the demo's deployment cites (issue 13.6): `edge-agent calibrate` on the dev set for a
#: two-subject watchlist and a budget of 1/50, the tightest 189 non-mated searches can show (README,
#: "Calibrating the threshold"). The evaluation report it cites by SHA-256 lies beside it.
DEMO_CALIBRATION = Path(__file__).resolve().with_name("devset-calibration.json")
DEMO_EVALUATION = Path(__file__).resolve().with_name("devset-evaluation.json")


def demo_calibration() -> CalibrationCitation:
    """The shipped calibration, cited as ``deployment create --calibration`` cites a report."""
    return read_calibration_report(DEMO_CALIBRATION)


@dataclass(frozen=True)
class DemoResult:
    frames: int
    alerts_raised: int
    verified: list[Verdict]
    rejected: list[Verdict]
    broker: str
    alerts_db: Path
    trace: TraceReport | None = None  # what the no-trace check searched and found (issue 10.19)


def _subjects_csv(path: Path, watchlist: list[tuple[str, str, str]]) -> Path:
    today = datetime.now(timezone.utc).date().isoformat()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject_ref", "category", "image", "image_source", "legal_basis", "image_date", "last_review_date", "under_18", "under_18_justification"])
        for ref, category, image in watchlist:
            writer.writerow([ref, category, image, "public-domain official portrait (demo)", "demo only: no legal basis", today, today, "no", ""])
    return path


def _agent_toml(path: Path, env: MessagingEnv, broker: MosquittoBroker | None, source: Path, deployment: Path, package: Path, authority_pub: Path, file_mode: str) -> Path:
    device_dir = env.devices[DEVICE_ID]
    client = env.clients[DEVICE_ID]
    mqtt = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\nca_file = "{env.ca_cert}"\n'
        f'cert_file = "{client.cert}"\nkey_file = "{client.key}"\nkeepalive = 5\n'
        if broker
        else ""
    )
    state = path.parent / "state"
    path.write_text(
        f"""config_version = 1
[device]
id = "{DEVICE_ID}"
state_dir = "{state}"
signing_key = "{device_dir / 'device_ed25519.key'}"
watchlist_key = "{device_dir / 'device_x25519.key'}"
authority_public_key = "{authority_pub}"
[hardware]
profile = "x86-dev"
[capture]
source = "{source}"
file_mode = "{file_mode}"
[detector]
model = "{DETECTOR}"
[pipeline]
alert_cooldown_s = 60.0
[watchlist]
package = "{package}"
[deployment]
record = "{deployment}"
{mqtt}[spool]
path = "{state / 'spool.db'}"
[control_room]
crop_public_key = "{env.control_room_pub}"
receipt_public_key = "{env.receipt_pub}"
[telemetry]
interval_s = 5
[logging]
level = "WARNING"
"""
    )
    return path


@dataclass(frozen=True)
class DemoSite:
    """A provisioned demo device: its agent config, the fleet material and the control room's files."""

    workdir: Path
    config_path: Path
    env: MessagingEnv
    record: DeploymentRecord
    watchlist_subjects: tuple[str, ...]
    package_bytes: int
    deployment_path: Path
    authority_pub: Path


def provision_site(
    workdir: Path,
    source: str | Path,
    broker: MosquittoBroker | None = None,
    watchlist: list[tuple[str, str, str]] = WATCHLIST,
    start: datetime | None = None,
    end: datetime | None = None,
    file_mode: str = "live",
    env: MessagingEnv | None = None,
    mode: str | None = None,
) -> DemoSite:
    """Authority, device, control room, a signed deployment, a watchlist sealed to the device and the
    device's agent.toml, all under ``workdir``. ``env`` (fleet PKI, keys, registry) is made if not given;
    pass the one the broker was started with."""
    now = datetime.now(timezone.utc)
    env = env or make_messaging_env(workdir / "fleet", (DEVICE_ID,))
    authority = init_authority(workdir / "authority")
    authority_key = load_authority_key(authority.signing_key)
    calibration = demo_calibration()
    record = DeploymentRecord(
        deployment_id="DEMO-LFR-0001", authorising_officer="Supt. Demo (demo)", purpose="demonstration of the agent",
        legal_basis="none: demonstration data only", location="sample video", location_rationale="bundled public-domain photos",
        start=start or now - timedelta(minutes=5), end=end or now + timedelta(hours=1), dpia_ref="DEMO-DPIA", equality_impact_ref="DEMO-EIA",
        mode=mode or ("LFR" if file_mode == "live" else "RFR"), platform="body_worn", silent=True,
        alert_threshold=calibration.threshold, watchlist_cap=calibration.watchlist_size, device_ids=(DEVICE_ID,),
        false_alert_budget=calibration.budget, calibration=calibration,
    )
    core = RecognitionCore.load(detector=DETECTOR)
    check_calibration(record, core.identity.as_dict())  # as deployment create does: the report must hold for these models
    signed = SignedDeployment.sign(record, authority_key)
    deployment_path = workdir / "deployment.json"
    signed.save(deployment_path)
    registry = DeviceRegistry.load(env.registry_path)
    built = build_watchlist(
        signed, read_subjects_csv(_subjects_csv(workdir / "subjects.csv", watchlist)), FIXTURE_FACES,
        {DEVICE_ID: registry.sealing_key(DEVICE_ID)}, authority_key, core, min(now, record.start),
    )
    package = workdir / "incoming" / "watchlist.eawl"
    package.parent.mkdir(exist_ok=True)
    package.write_bytes(built.package)
    config_path = _agent_toml(workdir / "agent.toml", env, broker, Path(source), deployment_path, package, authority.public_key, file_mode)
    return DemoSite(workdir, config_path, env, record, tuple(e.subject_ref for e in built.entries), len(built.package), deployment_path,
                    Path(authority.public_key))


def run_demo(workdir: Path, out: TextIO, use_broker: bool = True, kept: bool = True, every_frame: bool = False) -> DemoResult:
    """``every_frame``: read the video's every frame in order (a retrospective run, RFR) instead of as a
    live camera that drops stale frames: on a machine far slower than the device (arm64 under qemu,
    deploy/check-arm64.sh) a live replay sees only the few frames the emulator keeps up with, so
    which people it catches would depend on the emulator's speed."""
    # Absolute: agent.toml names files relative to its own folder, so a relative workdir was applied twice.
    workdir = Path(workdir).absolute()
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    say(f"edge-agent demo: the live agent on a sample video (3 people walk past; 2 are on the watchlist)\n  working folder: {workdir}")
    env = make_messaging_env(workdir / "fleet", (DEVICE_ID,))
    broker = None
    broker_note = ""
    if use_broker:
        try:
            broker = MosquittoBroker(env, workdir / "broker").start()
        except BrokerUnavailable as exc:
            broker_note = f" (Mosquitto unavailable: {exc.message}; {exc.hint})"
    try:
        return _run(workdir, say, env, broker, broker_note, kept, "every_frame" if every_frame else "live")
    finally:
        if broker is not None:  # on every path, errors included: never leave a Mosquitto behind
            broker.stop()


def _run(
    workdir: Path, say: Callable[[str], None], env: MessagingEnv, broker: MosquittoBroker | None, broker_note: str, kept: bool, file_mode: str
) -> DemoResult:
    video = write_walk_past_video(workdir / "walk-past.avi", WALKERS)
    site = provision_site(workdir, video, broker, env=env, file_mode=file_mode)
    record = site.record
    say(f"[1/5] keys, registry and a signed deployment {record.deployment_id}: body-worn {record.mode}, silent, threshold {record.alert_threshold}, ends {record.end:%H:%M} UTC")
    if isinstance(record.calibration, CalibrationCitation):
        c = record.calibration
        say(f"      threshold calibrated on the dev set (report sha256 {c.report_sha256[:12]}...): FPIR at most {c.fpir_upper95:.4f} (upper 95% bound "
            f"from {c.nonmated_searches} non-mated searches) for watchlists of up to {c.watchlist_size} subjects, budget {c.budget_text}")
    say(f"[2/5] watchlist: {len(site.watchlist_subjects)} subjects ({', '.join(site.watchlist_subjects)}), {site.package_bytes} bytes, encrypted to {DEVICE_ID} and signed")

    store = AlertStore(workdir / "control-room" / "alerts.db")
    registry = DeviceRegistry.load(env.registry_path)
    verdicts: list[Verdict] = []
    lock = threading.Lock()

    def on_verdict(verdict: Verdict) -> None:
        with lock:
            verdicts.append(verdict)
        if verdict.accepted and verdict.event_id is not None:
            alert = store.alert(verdict.event_id)
            say(
                f"  ALERT verified  subject {alert.subject_ref} ({alert.category})  score {alert.score:.3f} >= {alert.threshold:g}  "
                f"device {alert.device_id} seq {alert.seq}  status {alert.status}: a POSSIBLE match for a person to review"
            )
        else:
            say(f"  rejected message: {verdict.reason} ({verdict.detail})")

    room_audit = AuditLog.open(workdir / "control-room" / "audit.log", None, "control-room:demo")
    deployments = DeploymentBook(store.db, load_public_key(site.authority_pub, Ed25519PublicKey))
    deployments.import_signed(SignedDeployment.load(site.deployment_path), datetime.now(timezone.utc), "demo", room_audit)
    intake = AlertIntake(registry, load_private_key(env.control_room_key, X25519PrivateKey), store, deployments, room_audit)
    listener = None
    tap: BrokerTap | None = None
    try:
        if broker is not None:
            tap = BrokerTap(broker).start()
            say(f"[3/5] broker: Mosquitto on 127.0.0.1:{broker.port}, TLS 1.2+, client certificates, per-device ACL")
            issuer = ReceiptIssuer.from_key_file(env.receipt_key, "control-room", store)
            listener = AlertListener(broker.broker_config(CONTROL_ROOM_USER), intake, client_id="demo-control-room", on_verdict=on_verdict,
                                     receipts=issuer).start()
            if not listener.subscribed.wait(10):
                raise BrokerUnavailable(f"the control-room listener could not subscribe: {listener.last_error}", f"see the broker log {broker.log}")
            say("[4/5] control-room listener subscribed (MQTT 5 shared subscription); it verifies signatures, opens crops and signs a receipt for each stored alert")
        else:
            say(f"[3/5] no broker{broker_note}: alerts go from the device spool to the control-room intake in-process (same signed payloads)")
            say("[4/5] control-room intake ready")

        config = load_config(site.config_path)
        say(f"[5/5] agent running on {Path(config.capture.source).name} ({len(WALKERS)} people walk past, 15 fps) ...")
        summary = run_agent(config)
        if broker is None:
            with Spool(config.spool.path) as spool:
                for event in spool.pending(limit=1000):
                    on_verdict(intake.receive(alert_topic(DEVICE_ID), event.payload))
        else:
            _wait_for(lambda: sum(v.accepted for v in verdicts) >= summary.alerts, 15.0)
    except BaseException:
        store.close()
        room_audit.close()
        raise
    finally:
        if listener is not None:
            listener.stop(end_session=True)
        if tap is not None:
            tap.stop()
    if broker is not None:
        for line in receipt_lines(Path(config.device.state_dir) / "audit.log"):
            say(line)
    trace = _check_trace(workdir, video, record.alert_threshold, config.spool.path, tap.messages if tap else [])
    accepted = [v for v in verdicts if v.accepted]
    rejected = [v for v in verdicts if not v.accepted]
    say(
        f"\nagent: {summary.frames} frames, {summary.faces} faces of {summary.people} people, {summary.alerts} alerts raised "
        f"({summary.dropped_frames} stale frames dropped); control room verified {len(accepted)}, rejected {len(rejected)}.\n"
        f"{trace.line()}"
    )
    if kept:
        say(
            f"Review: edge-agent control-room alerts --db {store.path}\n"
            f"Decide: edge-agent control-room adjudicate EVENT_ID --db {store.path} --decision confirmed|rejected --reviewer NAME --reason TEXT "
            f"--audit-log {room_audit.path}"
        )
    else:
        say("Run with --workdir DIR to keep the keys, audit log and alert store, and adjudicate the alerts yourself.")
    store.close()
    room_audit.close()
    return DemoResult(summary.frames, summary.alerts, accepted, rejected, "mosquitto" if broker else "in-process", Path(store.path), trace)


def _check_trace(workdir: Path, video: Path, threshold: float, spool_path: Path, messages: list[tuple[str, bytes]]) -> TraceReport:
    """Recompute the non-matching faces' templates from the video and search everything for them."""
    from edge_agent.vision.image_io import read_image

    core = RecognitionCore.load(detector=DETECTOR)
    references = [face.embedding for _, _, photo in WATCHLIST for face in core.faces(read_image(FIXTURE_FACES / photo))[:1] if face.embedding is not None]
    templates = non_matching_templates(core, video, references, threshold)
    rows: list[bytes] = []
    if spool_path.exists():
        with Spool(spool_path) as spool:
            rows = [item.payload for item in spool.pending(limit=100_000)] + [item.payload for item in spool.unaudited()]
    return check_no_trace(workdir, [video], template_needles(templates), rows, messages, len(templates))


class BrokerTap:
    """Records every message the broker carries on the device topics (alert, status, telemetry),
    as the control room's identity sees them, for the no-trace check."""

    def __init__(self, broker: MosquittoBroker) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge_agent.events.mqtt_connection import tls_context
        from edge_agent.events.topics import ALERT_FILTER, STATUS_FILTER, TELEMETRY_FILTER

        self.messages: list[tuple[str, bytes]] = []
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="demo-broker-tap", protocol=mqtt.MQTTv5)
        self._client.tls_set_context(tls_context(broker.broker_config(CONTROL_ROOM_USER)))
        filters = [(ALERT_FILTER, 1), (STATUS_FILTER, 1), (TELEMETRY_FILTER, 0)]
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(filters) if not rc.is_failure else None
        self._client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self._broker = broker

    def start(self) -> "BrokerTap":
        self._client.connect(self._broker.host, self._broker.port, keepalive=10)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def receipt_lines(device_audit: Path) -> list[str]:
    """One line per receipt the device audited (receipt_received): what released each alert."""
    import json

    lines = []
    for text in device_audit.read_text(encoding="utf-8").splitlines():
        record = json.loads(text)
        if record.get("kind") == "receipt_received":
            d = record["details"]
            lines.append(f"  RECEIPT device {DEVICE_ID} seq {d['seq']}: event {d['event_id']} stored by {d['control_room']} at {d['stored_at']} "
                         f"(signed; the device released it from its spool and audited it as record {record['seq']})")
    return lines


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


__all__ = ["run_demo", "DemoResult"]
