"""``edge-agent run``: wires configuration, keys, watchlist, models, capture, pipeline and the MQTT
publisher into one loop, with systemd readiness/watchdog and a clean SIGTERM shutdown.

Start-up refuses to match without a verified, in-date watchlist bound to these models and this
device; every refusal is audited and explained.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.config_change import record_config_change
from edge_agent.agent.health import SystemdNotifier, cpu_temperature_c
from edge_agent.agent.pacing import FramePacer, PacingPolicy
from edge_agent.agent.pipeline import MatchingPipeline
from edge_agent.agent.schedule import RecognitionSchedule
from edge_agent.agent.storage_health import StorageHealth
from edge_agent.agent.trusted_time import ClockSetBack, TimeHighWater
from edge_agent.agent.tracking import AlertGate, FaceTracker
from edge_agent.audit.log import AuditLog
from edge_agent.capture.factory import is_file_source, is_live, open_source
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.deployment.policy import cited_calibration, describe_threshold
from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_client import AlertPublisher, Telemetry
from edge_agent.events.mqtt_connection import BrokerConfig
from edge_agent.events.outbox import AlertOutbox, audit_spool_drop
from edge_agent.events.spool import Spool
from edge_agent.identity.keys import DeviceKeys
from edge_agent.vision import model_timings
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.model_timings import ModelTimings
from edge_agent.vision.quality import QualityPolicy
from edge_agent.watchlist.errors import WatchlistExpired
from edge_agent.watchlist.installed import accept_pushed, load_installed
from edge_agent.watchlist.loader import DeviceTrust
from edge_agent.watchlist.retention import enforce_retention
from edge_agent.watchlist.store import WatchlistStore

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

log = logging.getLogger(__name__)

RETENTION_CHECK_S = 30.0
FACES_AUDIT_INTERVAL_S = 300.0  # periodic face counts, so a crash loses at most this much of the report
ALERT_SETTLE_S = 1.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunSummary:
    frames: int
    faces: int
    alerts: int
    dropped_frames: int
    stopped_because: str
    startup_s: float
    skipped_for_power: int = 0  # live frames not looked at while idle or hot (edge_agent/agent/pacing.py)
    people: int = 0  # distinct faces (tracks); ``faces`` counts detections, one per face per frame


def _model_timings(state_dir: Path) -> ModelTimings | None:
    timings, problem = model_timings.for_device(state_dir)
    if problem:
        log.warning(problem)
    return timings


def _state_dir(config: AgentConfig) -> Path:
    """The state directory, created 0700 if absent; a file (or anything else) there is a ConfigError."""
    state_dir = Path(config.device.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise ConfigError(f"device.state_dir {state_dir} is a file, not a directory", "move the file away, or point device.state_dir at a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot create device.state_dir {state_dir}: {exc.strerror}", "check the path and its permissions") from None
    return state_dir


def _device_keys(config: AgentConfig) -> DeviceKeys:
    return DeviceKeys(
        config.device.id,
        load_private_key(config.device.signing_key, Ed25519PrivateKey),
        load_private_key(config.device.watchlist_key, X25519PrivateKey),
    )


def _broker(config: AgentConfig) -> BrokerConfig | None:
    mqtt = config.mqtt
    if mqtt is None:
        return None
    if not (mqtt.tls and mqtt.ca_file and mqtt.cert_file and mqtt.key_file):
        raise ConfigError("mqtt needs tls = true with ca_file, cert_file and key_file", "alerts travel only over mutually authenticated TLS")
    return BrokerConfig(mqtt.host, mqtt.port, mqtt.ca_file, mqtt.cert_file, mqtt.key_file, keepalive_s=mqtt.keepalive)


def run_agent(
    config: AgentConfig,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = utc_now,
    notifier: SystemdNotifier | None = None,
    on_alert: Callable[[MatchDecision], None] | None = None,
) -> RunSummary:
    """Run until the source ends, ``stop`` is set, SIGTERM arrives, or the deployment ends."""
    started = time.monotonic()
    stop = stop or threading.Event()
    notifier = notifier or SystemdNotifier()
    state_dir = _state_dir(config)
    keys = _device_keys(config)
    actor = f"device:{config.device.id}"
    audit = AuditLog.open(state_dir / "audit.log", keys.signing_key, actor)
    store = WatchlistStore(state_dir / "watchlist")
    publisher: AlertPublisher | None = None
    spool: Spool | None = None
    try:
        now = clock()
        trusted = _trusted_time(state_dir, audit, now)
        record_config_change(config, state_dir, audit, now)
        pushed = Path(config.watchlist.package) if config.watchlist.package is not None else None
        pushed_present = pushed is not None and pushed.exists()
        stored = store.summary()
        ended = enforce_retention(store, now, audit)
        if ended and not pushed_present:
            raise _ended(stored.deployment_id if stored else "?")
        core = RecognitionCore.load(
            config.detector.models_dir,
            detector=config.detector.model,
            threads=config.hardware.threads,
            delegate=config.hardware.delegate,
            precision=config.hardware.precision,
            timings=_model_timings(state_dir) if config.hardware.precision == "auto" else None,
            quality=QualityPolicy(
                min_face_px=config.quality.min_face_px,
                min_blur=config.quality.min_blur,
                max_yaw=config.quality.max_yaw_ratio,
            ),
            detection_threshold=config.detector.min_score,
            tiles=config.detector.tiles,
        )
        authority = load_public_key(config.device.authority_public_key, Ed25519PublicKey)
        expected = SignedDeployment.load(config.deployment.record) if config.deployment.record is not None else None
        approvers = [load_public_key(path, Ed25519PublicKey) for path in config.deployment.approver_public_keys]
        trust = DeviceTrust(keys, authority, core.identity, approvers, expected)
        watchlist = None
        if pushed is not None and pushed_present:
            # A pushed package replaces the stored one only once it verifies in full (issue 10.8).
            outcome = accept_pushed(store, pushed, trust, now, audit)
            watchlist = outcome.loaded
            if watchlist is None and not store.exists():
                if outcome.ended or ended:
                    raise _ended(stored.deployment_id if stored else "?")
                raise outcome.refusal or _ended(stored.deployment_id if stored else "?")
            if watchlist is None:
                log.warning("pushed watchlist %s refused (%s); matching continues with the installed package", pushed, outcome.refusal)
        if watchlist is None:
            watchlist = load_installed(store, trust, now, audit)
        deployment = watchlist.deployment
        threshold_note = describe_threshold(deployment)
        (log.warning if cited_calibration(deployment) is None else log.info)(threshold_note)
        check_mode(deployment.mode, config.capture.source, config.capture.file_mode)
        if config.control_room.crop_public_key is None:
            raise ConfigError("control_room.crop_public_key is not set", "alerts carry the face crop sealed to the control room's X25519 public key")
        control_room = load_public_key(config.control_room.crop_public_key, X25519PublicKey)
        builder = EventBuilder(
            DeviceContext(config.device.id, deployment.deployment_id, str(watchlist.package_id), core.identity.as_event_dict()),
            keys.signing_key,
            control_room,
        )
        spool = Spool(config.spool.path, config.spool.max_bytes, timedelta(days=config.spool.max_age_days), on_drop=audit_spool_drop(audit), clock=clock)
        _purge_expired(spool)  # retention runs whether or not a broker is reachable (issue 10.12)
        broker = _broker(config)
        source = open_source(config.capture)
        # The outbox wakes the publisher, which does not exist yet: a closure resolves it at call time.
        outbox = AlertOutbox(builder, spool, audit, notify=lambda: publisher.notify() if publisher else None)
        health = StorageHealth(audit, outbox, notifier, f"matching for deployment {deployment.deployment_id}")
        pipeline = MatchingPipeline(
            core,
            watchlist,
            deployment.alert_threshold,
            outbox.raise_alert,
            clock,
            tracker=FaceTracker(config.pipeline.track_iou, config.pipeline.track_max_age_s),
            gate=AlertGate(settle_s=ALERT_SETTLE_S, cooldown_s=config.pipeline.alert_cooldown_s),
            max_faces_per_frame=config.pipeline.max_faces_per_frame,
            schedule=_schedule(config),
            local_alert=None if deployment.silent else (on_alert or _prompt_wearer),
            on_alert_failure=health.alert_failed,
        )

        def telemetry() -> Telemetry:
            counters = pipeline.counters
            return Telemetry(
                frames=counters.frames,
                faces=counters.faces,
                alerts=counters.alerts,
                dropped_frames=source.dropped,
                latency_ms_p50=round(counters.latency_percentile_ms(50), 2),
                latency_ms_p99=round(counters.latency_percentile_ms(99), 2),
                fps=round(counters.fps(), 2),
                temperature_c=cpu_temperature_c(),
                health=health.state,
                alerts_waiting=counters.alerts_waiting,
                alerts_unaudited=health.report().alerts_unaudited,
                model_precision=core.identity.precision,
                model_choice=core.choice,
            )

        if broker is not None:
            receipt_key = None
            if config.control_room.receipt_public_key is not None:
                receipt_key = load_public_key(config.control_room.receipt_public_key, Ed25519PublicKey)
            else:
                log.warning("control_room.receipt_public_key is not set: alerts leave the spool on the broker's PUBACK, not on a control-room receipt")
            publisher = AlertPublisher(broker, config.device.id, spool, telemetry=telemetry, telemetry_interval_s=config.telemetry.interval_s, clock=clock,
                                       receipt_key=receipt_key, audit=audit).start()
        previous = _install_sigterm(stop)
        reason = "source ended"
        last_retention = last_counts = time.monotonic()
        reported: dict[str, int] = {}

        def audit_face_counts() -> None:
            """A ``faces_processed`` record with the counts since the previous one (deltas add up)."""
            current = pipeline.counters.counts()
            delta = {k: v - reported.get(k, 0) for k, v in current.items()}
            if any(delta.values()) and health.safe_append("faces_processed", {"deployment_id": deployment.deployment_id, **delta}):
                reported.update(current)

        pacer = _pacer(config)
        startup_s = 0.0
        try:
            with source:
                for frame in source.frames():
                    if pacer is not None and startup_s and not pacer.should_process():
                        notifier.watchdog()
                        if stop.is_set():
                            reason = "stopped"
                            break
                        continue
                    faces_before = pipeline.counters.faces
                    pipeline.process(frame)
                    if pacer is not None:
                        pacer.observed(pipeline.counters.faces - faces_before)
                    if not startup_s:
                        startup_s = time.monotonic() - started
                        notifier.ready(f"matching for deployment {deployment.deployment_id}")
                        log.info("first frame processed %.2f s after start", startup_s)
                    notifier.watchdog()
                    health.tick(pipeline.counters.alerts_waiting)
                    if stop.is_set():
                        reason = "stopped"
                        break
                    if time.monotonic() - last_counts > FACES_AUDIT_INTERVAL_S:
                        last_counts = time.monotonic()
                        audit_face_counts()
                    if time.monotonic() - last_retention > RETENTION_CHECK_S:
                        last_retention = time.monotonic()
                        checked_at = clock()
                        _advance_trusted_time(trusted, checked_at, audit)  # a clock set back is not a deployment end
                        _purge_expired(spool)
                        if not watchlist.active(checked_at):
                            reason = "deployment ended"
                            break
        finally:
            _restore_sigterm(previous)
            notifier.stopping()
            pipeline.finish()
            audit_face_counts()
        if reason == "deployment ended":
            enforce_retention(store, clock(), audit)
        counters = pipeline.counters
        skipped = pacer.skipped if pacer is not None else 0
        health.safe_append(
            "session_summary",
            {"deployment_id": deployment.deployment_id, **counters.counts(), "dropped_frames": source.dropped, "skipped_for_power": skipped, "stopped_because": reason,
             "alerts_not_stored": counters.alerts_not_stored + counters.alerts_waiting},
        )
        return RunSummary(counters.frames, counters.faces, counters.alerts, source.dropped, reason, startup_s, skipped, counters.people)
    finally:
        if publisher is not None:
            publisher.stop()
        if spool is not None:
            spool.close()
        audit.close()
        notifier.close()


def _trusted_time(state_dir: Path, audit: AuditLog, now: datetime) -> TimeHighWater:
    try:
        return TimeHighWater.open(state_dir, audit.last_time(), now)
    except ClockSetBack as exc:
        _audit_clock_set_back(audit, now, exc)
        raise


def _advance_trusted_time(trusted: TimeHighWater, now: datetime, audit: AuditLog) -> None:
    """While running: a clock stepped back past the mark stops matching (raises ClockSetBack)."""
    try:
        trusted.advance(now)
    except ClockSetBack as exc:
        _audit_clock_set_back(audit, now, exc)
        raise


def _audit_clock_set_back(audit: AuditLog, now: datetime, exc: ClockSetBack) -> None:
    from edge_agent.timestamps import format_timestamp

    log.error("%s", exc.message)
    try:
        audit.append("clock_set_back", {"now": format_timestamp(now), "high_water": format_timestamp(exc.mark)}, now=exc.mark)
    except EdgeAgentError:
        pass  # a full disk: the error itself still stops matching


def _purge_expired(spool: Spool) -> None:
    try:
        spool.purge_expired()
    except EdgeAgentError as exc:  # a full disk must not end the agent; the next check retries
        log.error("spool retention run failed: %s", exc.message)


def _ended(deployment_id: str) -> WatchlistExpired:
    return WatchlistExpired(
        f"deployment {deployment_id} has ended: its watchlist was destroyed and nothing will be matched",
        "push the signed deployment record and watchlist of a current deployment",
    )


def _schedule(config: AgentConfig) -> RecognitionSchedule:
    """Live capture recognises a tracked face every ``recognise_every_s``; a recording being
    searched (RFR) has every face of every frame recognised."""
    live = is_live(str(config.capture.source), config.capture.file_mode)
    return RecognitionSchedule(config.pipeline.recognise_every_s if live else 0.0)


def _pacer(config: AgentConfig) -> FramePacer | None:
    """Live capture only: a recording being searched must be searched frame by frame."""
    p = config.pipeline
    policy = PacingPolicy(p.idle_fps, p.idle_after_s, p.hot_temperature_c, p.hot_fps)
    if not policy.enabled or not is_live(str(config.capture.source), config.capture.file_mode):
        return None
    return FramePacer(policy, temperature=cpu_temperature_c)


def check_mode(mode: str, source: str, file_mode: str) -> None:
    """LFR authorises live capture only, RFR the search of recordings; OIFR is a per-still request
    (``edge-agent search`` with the deployment and its watchlist), never a running agent
    (policing.md 3: the mode is explicit)."""
    if is_file_source(str(source)) and not Path(str(source).strip()).exists():
        raise ConfigError(
            f"capture.source {source} does not exist",
            "copy the recording there, or correct capture.source in the agent config",
        )
    live = is_live(str(source), file_mode)
    if mode == "LFR" and not live:
        raise ConfigError(
            f"the deployment is LFR (live) but capture.source {source} is a recording",
            "use a camera or stream, or a deployment authorised for RFR (retrospective) search",
        )
    if mode == "RFR" and live:
        raise ConfigError(
            f"the deployment is RFR (retrospective) but capture.source {source} is live capture",
            "point capture.source at the recording (a video file with file_mode = 'every_frame', or a folder)",
        )
    if mode == "OIFR":
        raise ConfigError(
            "the deployment is OIFR (operator-initiated): it authorises comparisons of single stills, not a running agent",
            "search the still with: edge-agent search IMAGE --deployment DEPLOYMENT --watchlist WATCHLIST "
            "--device-keys KEYS_DIR --authority-pub AUTHORITY_PUB --audit-log AUDIT_LOG",
        )


def _prompt_wearer(decision: MatchDecision) -> None:
    """Non-silent deployments: tell the wearer a *possible* match awaits control-room review."""
    log.warning("possible match (score %.3f): the control room will review it", decision.score)


def _install_sigterm(stop: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: stop.set())


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
