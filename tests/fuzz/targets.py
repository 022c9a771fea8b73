"""Fuzz targets: every parser that reads outside input, each with seeds made by the project's own code.

A target is a function that feeds one input to a parser and lets through only the parser's
documented refusal (an EdgeAgentError subclass, or a refusal it returns); anything else escapes
and the fuzzer records it as a crash. Seeds are real objects: packages, records, events and audit
logs built and signed with real keys. Byte mutations of a signed object mostly stop at the
signature, so the ``*_signed`` / ``*_sealed`` targets take the mutated *content* and sign (and
seal) it again with the same keys before parsing: the fuzzer then reaches the parsers behind the
signature check. Used by tests/fuzz/test_fuzz.py (short run) and benchmarks/fuzz.py (long run),
both through tests/fuzz/run_target.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "fixtures" / "faces"

START = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=8)
DURING = START + timedelta(hours=1)
MODEL = {"detector_sha256": "d" * 64, "aligner": "umeyama-5pt-112-v1", "embedder_sha256": "e" * 64}
DEVICE = "cam-01"


@dataclass(frozen=True)
class Target:
    name: str
    parser: str  # what it exercises, for the table
    seeds: list[bytes]
    run: Callable[[bytes], None]


def _scratch() -> Path:
    """Per-process scratch folder, in RAM where there is one (targets that must read a file)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="edge-agent-fuzz-", dir=base))


# --- the world every target shares: real keys, a real signed deployment ---------------------------
@dataclass
class World:
    authority: Any
    device: Any  # DeviceKeys
    deployment: Any  # SignedDeployment
    record: Any  # DeploymentRecord
    scratch: Path
    seals: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # header prefix -> (content key, device seal)


def make_world() -> World:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.deployment.calibration import CalibrationCitation
    from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
    from edge_agent.identity.keys import DeviceKeys

    authority = Ed25519PrivateKey.generate()
    citation = CalibrationCitation(
        report_sha256="ab" * 32, created_at="2026-11-20T12:00:00.000Z", tool_version="edge_agent 0.1.0",
        evaluation_report_sha256="cd" * 32, evaluation_set_sha256="ef" * 32, **MODEL,
        budget=1 / 6000, budget_text="1/6000", watchlist_size=2000, evaluated_watchlist_size=10000, threshold=0.58,
        fpir_upper95=0.000162, nonmated_searches=300000, mated_searches=1000,
    )
    record = DeploymentRecord(  # version 3 (RFC 8785), the version written now
        deployment_id="DEP-2026-0042", authorising_officer="Supt A. Example", purpose="Locate people wanted on warrant",
        legal_basis="Common law policing powers; DPA 2018 s35", location="Example Street", location_rationale="Intelligence",
        start=START, end=END, dpia_ref="DPIA-1", equality_impact_ref="EIA-1", mode="LFR", platform="fixed", silent=False,
        alert_threshold=0.6, watchlist_cap=2000, device_ids=(DEVICE, "cam-02"), false_alert_budget=1 / 6000, calibration=citation,
    )
    device = DeviceKeys(DEVICE, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    return World(authority, device, SignedDeployment.sign(record, authority), record, _scratch())


def _allowed(*errors: type[BaseException]) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    """Wrap ``fn`` so that only the documented refusals are swallowed."""

    def wrap(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def run(data: bytes) -> None:
            try:
                fn(data)
            except errors:
                pass

        return run

    return wrap


# --- watchlist package ------------------------------------------------------------------------------
def _entries_and_templates(n: int = 3):
    import numpy as np

    from edge_agent.watchlist.entry import WatchlistEntry

    cats = ("wanted_by_court", "suspect", "missing_vulnerable")
    entries = [WatchlistEntry(f"CASE-{i:05d}", cats[i % 3], "custody image", "PACE s64A", START.date(), START.date(), False, None, 1) for i in range(n)]
    rng = np.random.default_rng(0)
    t = rng.standard_normal((n, 128)).astype(np.float32)
    return entries, t / np.linalg.norm(t, axis=1, keepdims=True)


def _package(world: World, n: int = 3) -> bytes:
    from edge_agent.watchlist.package import pack_watchlist

    entries, templates = _entries_and_templates(n)
    return pack_watchlist(world.deployment, entries, templates, MODEL, {DEVICE: world.device.sealing_public}, world.authority, START - timedelta(hours=2))


def _watchlist_refusals() -> tuple[type[BaseException], ...]:
    from edge_agent.deployment.errors import DeploymentRefused
    from edge_agent.watchlist.errors import WatchlistRefused

    return (WatchlistRefused, DeploymentRefused)


def _load(world: World, data: bytes) -> None:
    from edge_agent.watchlist.loader import load_watchlist

    loaded = load_watchlist(data, world.device, world.authority.public_key(), MODEL, DURING)
    assert loaded.gallery is not None and loaded.deployment.deployment_id == world.record.deployment_id


def watchlist_package(world: World) -> Target:
    """The package bytes as pushed to a device, signature and all."""
    seeds = [_package(world, n) for n in (1, 3)]
    return Target("watchlist_package", "watchlist/loader.py load_watchlist (raw bytes)", seeds,
                  _allowed(*_watchlist_refusals())(lambda data: _load(world, data)))


def watchlist_signed(world: World) -> Target:
    """Everything the signature covers, mutated, then signed again by the authority: reaches the
    container, header, deployment and seal parsers."""
    from edge_agent.crypto.signing import sign
    from edge_agent.watchlist.format import SIGNATURE_DOMAIN, SIGNATURE_LEN

    seeds = [_package(world, n)[:-SIGNATURE_LEN] for n in (1, 3)]

    def run(data: bytes) -> None:
        _load(world, data + sign(world.authority, SIGNATURE_DOMAIN, data))

    return Target("watchlist_signed", "watchlist/format.py decode_container + header (re-signed)", seeds, _allowed(*_watchlist_refusals())(run))


def _seal_package(world: World, header_bytes: bytes, plaintext: bytes) -> bytes:
    """A package around ``header_bytes`` and ``plaintext``, sealed to the device and signed: the
    same steps as pack_watchlist, but taking the bytes as they are."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from edge_agent.crypto.sealing import seal
    from edge_agent.crypto.signing import sign
    from edge_agent.watchlist.format import FORMAT_VERSION, MAGIC, NONCE_LEN, SEAL_CONTEXT, SIGNATURE_DOMAIN, encode_unsigned, seal_aad

    prefix = MAGIC + bytes([FORMAT_VERSION]) + struct.pack(">I", len(header_bytes)) + header_bytes
    if prefix not in world.seals:  # one content key and seal per header: the X25519 step is the slow part
        if len(world.seals) > 256:
            world.seals.clear()
        key = AESGCM.generate_key(bit_length=256)
        world.seals[prefix] = (key, seal(key, world.device.sealing_public, SEAL_CONTEXT, seal_aad(prefix, DEVICE)))
    key, sealed = world.seals[prefix]
    nonce = os.urandom(NONCE_LEN)
    payload = nonce + AESGCM(key).encrypt(nonce, plaintext, prefix)
    unsigned = encode_unsigned(prefix, {DEVICE: sealed}, payload)
    return unsigned + sign(world.authority, SIGNATURE_DOMAIN, unsigned)


def _split_real(world: World, n: int) -> tuple[bytes, bytes]:
    """(header bytes, decrypted plaintext) of a real package."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from edge_agent.crypto.sealing import open_sealed
    from edge_agent.watchlist.format import NONCE_LEN, SEAL_CONTEXT, decode_container, seal_aad

    c = decode_container(_package(world, n))
    key = open_sealed(c.seals[DEVICE], world.device.sealing_key, SEAL_CONTEXT, seal_aad(c.prefix, DEVICE))
    return c.prefix[9:], AESGCM(key).decrypt(c.payload[:NONCE_LEN], c.payload[NONCE_LEN:], c.prefix)


def watchlist_header(world: World) -> Target:
    """The header JSON (with the embedded signed deployment), sealed and signed around it."""
    real = [_split_real(world, n) for n in (1, 3)]
    plaintexts = {len(h): p for h, p in real}

    def run(data: bytes) -> None:
        _load(world, _seal_package(world, data, plaintexts.get(len(data), real[-1][1])))

    return Target("watchlist_header", "watchlist/loader.py header fields, embedded deployment (re-sealed)", [h for h, _ in real],
                  _allowed(*_watchlist_refusals())(run))


def watchlist_payload(world: World) -> Target:
    """The decrypted payload (entry metadata + templates), encrypted, sealed and signed again."""
    real = [_split_real(world, n) for n in (1, 3)]
    headers = {n: h for n, (h, _) in zip((1, 3), real, strict=True)}

    def run(data: bytes) -> None:
        # The header's counts are fixed; pick the one whose template bytes fit best, so both paths are reached.
        header = headers[3] if len(data) > len(real[0][1]) + 256 else headers[1]
        _load(world, _seal_package(world, header, data))

    return Target("watchlist_payload", "watchlist/format.py decode_meta_length, decode_entries, check_template_bytes; loader.py _open_payload; entry.py (re-sealed)", [p for _, p in real],
                  _allowed(*_watchlist_refusals())(run))


# --- deployment record ------------------------------------------------------------------------------
def deployment_file(world: World) -> Target:
    """The signed deployment file a device or control room is handed."""
    from edge_agent.deployment.policy import authorise
    from edge_agent.errors import SecurityError

    def run(data: bytes) -> None:
        from edge_agent.deployment.record import SignedDeployment

        signed = SignedDeployment.from_bytes(data)
        signed.verify(world.authority.public_key())
        authorise(signed, world.authority.public_key(), DEVICE, DURING, (), MODEL)

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_agent.deployment.record import DeploymentRecord, SignedDeployment

    approver = Ed25519PrivateKey.generate()
    legacy = SignedDeployment.sign(DeploymentRecord(**{**world.record.__dict__, "version": 2}), world.authority)  # signed-file version 1
    seeds = [world.deployment.to_bytes(), world.deployment.approve(approver).to_bytes(), legacy.approve(approver).to_bytes()]
    return Target("deployment_file", "deployment/record.py SignedDeployment.from_bytes + verify", seeds, _allowed(SecurityError)(run))


def deployment_signed(world: World) -> Target:
    """The record bytes themselves, signed again by the authority: reaches DeploymentRecord.from_json,
    the calibration section and the policy."""
    from edge_agent.crypto.signing import sign
    from edge_agent.deployment.policy import authorise
    from edge_agent.deployment.record import AUTHORITY_DOMAINS, DEPLOYMENT_VERSION, DeploymentRecord, SignedDeployment
    from edge_agent.errors import SecurityError

    def run(data: bytes) -> None:
        try:  # signed under the domain of the version the bytes state, as the authority would
            version = SignedDeployment(data, b"").record_version
        except SecurityError:
            version = DEPLOYMENT_VERSION
        signed = SignedDeployment(data, sign(world.authority, AUTHORITY_DOMAINS[version], data))
        record = signed.verify(world.authority.public_key())
        assert record.canonical_bytes() == data
        authorise(signed, world.authority.public_key(), DEVICE, DURING, (), MODEL)
        signed.unverified_record()

    v1 = DeploymentRecord(**{**world.record.__dict__, "version": 1, "calibration": None, "false_alert_budget": None})
    v2 = DeploymentRecord(**{**world.record.__dict__, "version": 2})
    seeds = [world.deployment.record_bytes, v1.canonical_bytes(), v2.canonical_bytes(), SignedDeployment.sign(
        DeploymentRecord(**{**world.record.__dict__, "calibration": _provisional()}), world.authority).record_bytes]
    return Target("deployment_signed", "deployment/record.py DeploymentRecord.from_json + calibration section (re-signed)", seeds,
                  _allowed(SecurityError)(run))


def _provisional():
    from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, ProvisionalDefault

    return ProvisionalDefault(CALIBRATED_DEFAULT_THRESHOLD)


# --- calibration report -----------------------------------------------------------------------------
def calibration_report(world: World) -> Target:
    """The file ``edge-agent calibrate --out`` writes, as ``deployment create --calibration`` reads it."""
    import numpy as np

    from edge_agent.deployment.calibration import read_calibration_report
    from edge_agent.errors import ConfigError
    from edge_agent.evaluation.calibrate import calibrate, encode_calibration, parse_budget
    from edge_agent.evaluation.identification import IdentificationScores

    rng = np.random.default_rng(1)
    scores = IdentificationScores(20, rng.uniform(0.4, 0.9, 40), np.zeros(40, dtype=int), rng.uniform(-0.2, 0.5, 4000), np.zeros(4000, dtype=int))
    seeds = []
    for budget in ("1/20", "1/6000"):  # the second cannot be supported: recommended_threshold is null
        record = calibrate(scores, parse_budget(budget), 10, 1000, START, "ab" * 32, dict(MODEL), "cd" * 32)
        seeds.append(encode_calibration(record))  # version 2: RFC 8785 and a line feed
        legacy = {**record, "version": 1, "created_at": START.isoformat()}  # version 1, as the older calibrate wrote it
        seeds.append((json.dumps(legacy, indent=1, allow_nan=False) + "\n").encode())
    path = world.scratch / "calibration.json"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        citation = read_calibration_report(path)
        assert citation.report_sha256 == hashlib.sha256(data).hexdigest()
        json.dumps(citation.to_json(), allow_nan=False)

    return Target("calibration_report", "deployment/calibration.py read_calibration_report", seeds, _allowed(ConfigError)(run))


# --- alert events -----------------------------------------------------------------------------------
def _events(world: World, control_room_pub: Any, n: int = 3) -> list[bytes]:
    from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
    from edge_agent.events.schema import AuditHead, Candidate
    from edge_agent.events.signing import encode_event

    context = DeviceContext(DEVICE, world.record.deployment_id, "wl-1", {**MODEL, "precision": "int8"})
    builder = EventBuilder(context, world.device.signing_key, control_room_pub)
    jpeg = (FACES / "obama_1.jpg").read_bytes()[:2000]
    out = []
    for seq in range(1, n + 1):
        cands = tuple(Candidate(f"CASE-{i:05d}", round(0.9 - 0.1 * i, 6)) for i in range(seq))
        decision = MatchDecision(cands[0].subject_ref, "suspect", cands[0].score, 0.6, cands, (10, 20, 110, 140))
        event = builder.build(decision, jpeg, DURING, seq, spool_epoch="5e" * 16, audit_head=AuditHead(40 + seq, hashlib.sha256(bytes([seq])).hexdigest()))
        out.append(encode_event(event))
    return out


def event_payload(world: World) -> Target:
    """An alert as the listener receives it: strict JSON, the schema, the signature check."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.errors import SecurityError
    from edge_agent.events.schema import AlertEvent, EventFormatError, parse_payload
    from edge_agent.events.signing import verify_event

    def run(data: bytes) -> None:
        event = AlertEvent.from_dict(parse_payload(data))
        verify_event(event, world.device.signing_public)

    seeds = _events(world, X25519PrivateKey.generate().public_key())
    return Target("event_payload", "events/schema.py parse_payload + AlertEvent.from_dict + verify", seeds,
                  _allowed(EventFormatError, SecurityError)(run))


def _resign_event(world: World, data: bytes) -> bytes:
    """Sign the mutated event again with the device key (over the same bytes the device signs),
    if it is a JSON object; anything else goes to the intake as it is."""
    from edge_agent.crypto.canonical import canonical_json, jcs
    from edge_agent.crypto.signing import ALERT_V1_UNDOMAINED, ALERT_V2, sign
    from edge_agent.errors import EdgeAgentError
    from edge_agent.events.schema import SCHEMA_V1, parse_payload

    try:
        doc = parse_payload(data)
    except EdgeAgentError:
        return data
    if not isinstance(doc, dict) or "signature" not in doc:
        return data
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    v1 = doc.get("schema") == SCHEMA_V1  # read-only legacy: canonical_json, no domain
    encode, domain = (canonical_json, ALERT_V1_UNDOMAINED) if v1 else (jcs, ALERT_V2)
    try:
        signed_bytes = encode(unsigned)
        doc["signature"] = base64.b64encode(sign(world.device.signing_key, domain, signed_bytes)).decode()
        return encode(doc)
    except (EdgeAgentError, ValueError, TypeError):
        return data


def event_intake(world: World) -> Target:
    """The whole control-room intake on a real SQLite store, with each mutated event signed again
    by the registered device key: every check after the signature (window, crop, replay memory,
    deployment) is reached. The intake must never file an input as an internal error."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.local_room import local_intake
    from edge_agent.control_room.store import AlertStore
    from edge_agent.identity.registry import DeviceRegistry

    class Sink:
        def append(self, kind: str, details: dict, actor: str | None = None) -> None:
            json.dumps(details)

    registry = DeviceRegistry()
    registry.add(DEVICE, world.device.signing_public, world.device.sealing_public, START - timedelta(days=1))
    control_room = X25519PrivateKey.generate()
    store = AlertStore(str(world.scratch / "alerts.db"))
    intake = local_intake(registry, control_room, store, world.authority, [world.deployment], Sink(), clock=lambda: DURING + timedelta(minutes=1))
    seeds = _events(world, control_room.public_key())
    topic = f"lfr/v1/{DEVICE}/alert"

    def run(data: bytes) -> None:
        verdict = intake.receive(topic, _resign_event(world, data))
        assert verdict.reason != "internal_error", verdict.detail

    return Target("event_intake", "control_room/intake.py AlertIntake.receive (re-signed)", seeds, run)


# --- agent config -----------------------------------------------------------------------------------
CONFIG_SEED = """config_version = 1
[device]
id = "cam-01"
state_dir = "/var/lib/edge-agent"
signing_key = "keys/device_ed25519.key"
watchlist_key = "keys/device_x25519.key"
authority_public_key = "keys/authority.pub"
[hardware]
profile = "x86-dev"
threads = 2
[capture]
source = "rtsp://camera.local/stream"
credentials_file = "keys/stream.credentials"
width = 1280
height = 720
fps = 15.0
file_mode = "every_frame"
pixel_format = "RGB888"
[detector]
model = "both"
min_score = 0.5
tiles = "auto"
[quality]
min_face_px = 40
[pipeline]
alert_cooldown_s = 60.0
frame_policy = "latest"
idle_fps = 5.0
[watchlist]
package = "incoming/watchlist.eawl"
[deployment]
record = "incoming/deployment.json"
approver_public_keys = ["keys/approver.pub"]
[mqtt]
host = "broker.example"
port = 8883
tls = true
ca_file = "keys/ca.pem"
cert_file = "keys/device.pem"
key_file = "keys/device.key"
keepalive = 30
[spool]
max_bytes = 268435456
max_age_days = 7
[control_room]
crop_public_key = "keys/control_room_x25519.pub"
[telemetry]
interval_s = 60
[logging]
level = "info"
"""


def config_toml(world: World) -> Target:
    """The agent's TOML config file (validated without the files it names existing)."""
    from edge_agent.agent.config import load_config
    from edge_agent.errors import ConfigError

    path = world.scratch / "agent.toml"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        load_config(path, check_files=False)

    minimal = "\n".join(line for line in CONFIG_SEED.splitlines() if not line.startswith(("threads", "width", "height", "tiles", "credentials_file")))
    return Target("config_toml", "agent/config.py load_config", [CONFIG_SEED.encode(), minimal.encode()], _allowed(ConfigError)(run))


# --- audit log --------------------------------------------------------------------------------------
def audit_log(world: World) -> Target:
    """An audit log file as ``edge-agent audit verify`` and the agent's start-up read it."""
    from edge_agent.audit.log import AuditError, AuditLog
    from edge_agent.audit.verify import verify_audit_log

    source = world.scratch / "seed-audit.log"
    with AuditLog.open(source, world.device.signing_key, f"device:{DEVICE}", checkpoint_every=3) as log:
        log.append("agent_started", {"version": "0.1.0"}, now=DURING)
        log.append("watchlist_loaded", {"deployment_id": world.record.deployment_id, "entries": 3}, now=DURING)
        log.append("faces_processed", {"deployment_id": world.record.deployment_id, "faces": 12, "matches": 1}, now=DURING)
        log.append("alert_raised", {"event_id": str(uuid.uuid4()), "seq": 1}, now=DURING)
    seeds = [source.read_bytes(), b"".join(source.read_bytes().splitlines(keepends=True)[:2])]
    path = world.scratch / "audit.log"
    public = world.device.signing_public

    def run(data: bytes) -> None:
        path.write_bytes(data)
        result = verify_audit_log(path, public, checkpoint_every=3)
        assert isinstance(result.ok, bool) and result.summary()
        try:
            AuditLog.open(path, None, f"device:{DEVICE}").close()  # no key: reads the tail, writes nothing
        except AuditError:
            pass

    return Target("audit_log", "audit/verify.py verify_audit_log + audit/log.py open", seeds, run)


# --- image headers ----------------------------------------------------------------------------------
def image_header(world: World) -> Target:
    """A still image as ``edge-agent search`` and enrolment read it: header checks, then OpenCV."""
    import cv2

    from edge_agent.errors import ImageError
    from edge_agent.vision.image_io import decode_image

    face = cv2.resize(cv2.imread(str(FACES / "obama_1.jpg")), (48, 48))
    seeds = [cv2.imencode(ext, face)[1].tobytes() for ext in (".jpg", ".png")]
    seeds.append(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes())

    def run(data: bytes) -> None:
        image = decode_image(data, "fuzz")
        assert image.ndim == 3 and image.shape[2] == 3

    return Target("image_header", "vision/image_io.py decode_image", seeds, _allowed(ImageError)(run))


# --- receipts and adjudication notices (control room -> device) ------------------------------------
def _control_room_messages(world: World) -> tuple[Any, list[bytes]]:
    """The control room's signing key and one real receipt and adjudication notice each."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.events.receipts import AdjudicationNotice, Receipt, encode_message, sign_message
    from edge_agent.events.schema import AlertEvent, parse_payload

    key = Ed25519PrivateKey.generate()
    event = AlertEvent.from_dict(parse_payload(_events(world, X25519PrivateKey.generate().public_key(), 1)[0]))
    receipt = Receipt.for_alert(event, DURING + timedelta(seconds=1), "control-room-1")
    notices = [AdjudicationNotice(event.event_id, DEVICE, decision, engaged, DURING + timedelta(minutes=3), "reviewer.a", "control-room-1")
               for decision, engaged in (("confirmed", True), ("rejected", None))]
    return key, [encode_message(sign_message(m, key)) for m in (receipt, *notices)]


def _check_message(key: Any, data: bytes) -> None:
    from edge_agent.events.receipts import encode_message, parse_message, verify_message

    message = parse_message(data)
    verify_message(message, key.public_key())
    assert encode_message(message) == data  # canonical both ways: what verified is what was read


def receipt(world: World) -> Target:
    """A receipt or adjudication notice as the device receives it (lfr.receipt/1, lfr.adjudication/1)."""
    from edge_agent.errors import SecurityError
    from edge_agent.events.receipts import MessageFormatError

    key, seeds = _control_room_messages(world)
    return Target("receipt", "events/receipts.py parse_message + verify_message", seeds,
                  _allowed(MessageFormatError, SecurityError)(lambda data: _check_message(key, data)))


def receipt_signed(world: World) -> Target:
    """Receipts and notices mutated, then signed again with the control room's key (over JCS of the
    unsigned message, under its schema's domain): reaches every field rule behind the signature."""
    from edge_agent.crypto.canonical import jcs, loads_strict
    from edge_agent.crypto.signing import ADJUDICATION_V1, RECEIPT_V1, sign
    from edge_agent.errors import EdgeAgentError, SecurityError
    from edge_agent.events.receipts import ADJUDICATION_SCHEMA, MessageFormatError

    key, seeds = _control_room_messages(world)

    def resign(data: bytes) -> bytes:
        try:
            doc = loads_strict(data)
            if not isinstance(doc, dict):
                return data
            unsigned = {k: v for k, v in doc.items() if k != "signature"}
            domain = ADJUDICATION_V1 if doc.get("schema") == ADJUDICATION_SCHEMA else RECEIPT_V1
            doc["signature"] = base64.b64encode(sign(key, domain, jcs(unsigned))).decode()
            return jcs(doc)
        except (EdgeAgentError, ValueError, TypeError):
            return data

    return Target("receipt_signed", "events/receipts.py Receipt / AdjudicationNotice fields (re-signed)", seeds,
                  _allowed(MessageFormatError, SecurityError)(lambda data: _check_message(key, resign(data))))


TARGETS: dict[str, Callable[[World], Target]] = {
    "watchlist_package": watchlist_package,
    "watchlist_signed": watchlist_signed,
    "watchlist_header": watchlist_header,
    "watchlist_payload": watchlist_payload,
    "deployment_file": deployment_file,
    "deployment_signed": deployment_signed,
    "calibration_report": calibration_report,
    "event_payload": event_payload,
    "event_intake": event_intake,
    "config_toml": config_toml,
    "audit_log": audit_log,
    "image_header": image_header,
    "receipt": receipt,
    "receipt_signed": receipt_signed,
}


def control_unguarded(world: World) -> Target:
    """Positive control: the event parser with *no* refusal allowed, so the first mutated input that
    it refuses must be reported as a crash (proves the harness catches what escapes)."""
    from edge_agent.events.schema import AlertEvent, parse_payload

    def run(data: bytes) -> None:
        AlertEvent.from_dict(parse_payload(data))

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return Target("control_unguarded", "positive control", _events(world, X25519PrivateKey.generate().public_key(), 1), run)


CONTROLS: dict[str, Callable[[World], Target]] = {"control_unguarded": control_unguarded}
