"""The agent's one TOML configuration file, validated completely at start-up.

Why so strict: a device in the field has nobody to read a stack trace. Every problem is found
before the camera opens, and the error names the key path (``mqtt.port``), the bad value and
what is allowed. Unknown keys are errors (a typo must not silently fall back to a default).
Secrets are never written inline: keys and credentials are named by file path, and private key
files must be readable by their owner only. Format: docs/formats/config.md (version 1).

Each key's type, default, bounds and help are declared on its dataclass field (``setting``);
one generic reader (``edge_agent.config_reader``) reads them all. What is left as code below is
the rules between keys: the hardware profile's defaults, relative capture sources, TLS.
Parsing imports no OpenCV and no LiteRT (a test pins it): start-up on a Pi Zero pays for both.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_agent.config_reader import (
    INLINE_KEY,  # noqa: F401  (re-exported: the rules are documented here)
    KEY_PATH_NAMES,  # noqa: F401
    REQUIRED,
    SECRET_NAMES,  # noqa: F401
    Derived,
    Spec,
    Table,
    read_section,
    read_toml,
    setting,
    specs,
)
from edge_agent.errors import ConfigError
from edge_agent.identifiers import MAX_RETENTION_DAYS, PIXEL_FORMATS, TOPIC_PREFIX, check_device_id
from edge_agent.vision.identity import DETECTOR_CHOICES
from edge_agent.vision.model_choice import PRECISION_CHOICES
from edge_agent.vision.quality import QualityPolicy
from edge_agent.vision.tiling import TileGrid

CONFIG_VERSION = 1
PROFILE_VERSION = 1

DETECTOR_MODELS = DETECTOR_CHOICES  # one list, vision/identity.py
DELEGATES = ("none", "edgetpu")
FILE_MODES = ("every_frame", "live")
# Keys that were once accepted: a config still setting one is told what replaced it.
RETIRED_KEYS = {
    ("pipeline", "frame_policy"): (
        "was removed: it never changed anything (live sources always hand over only the newest frame, recordings are read frame by frame)",
        "delete the line; choose how a video file is read with capture.file_mode ('every_frame' or 'live')",
    ),
}
MQTT_PROTOCOLS = ("5",)  # the publisher speaks MQTT 5 (PUBACK reason codes, session expiry)
TOPIC_PREFIXES = (TOPIC_PREFIX,)  # topics format v1 (docs/formats/topics.md)
DEFAULT_QUALITY = QualityPolicy()  # the quality gates' defaults live with the gates
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MISSING_CONFIG_HINT = "check the path (default /etc/edge-agent/agent.toml)"


def default_profile_dirs() -> tuple[Path, ...]:
    """Where hardware profiles live: a source checkout's hw/profiles, then the installed copy."""
    return (Path(__file__).resolve().parents[2] / "hw" / "profiles", Path("/opt/edge-agent/hw/profiles"))


def _from_profile(attr: str) -> Derived:
    return Derived(lambda env: getattr(env["hardware_profile"], attr), "profile")


def _parse_tiles(value: Any) -> TileGrid:
    return TileGrid.parse(value)


# --- the validated configuration --------------------------------------------------------------
@dataclass(frozen=True)
class DeviceConfig:
    id: str = setting("identifier", help="device identity: MQTT topic level, client certificate CN, registry key", check=check_device_id)
    state_dir: Path = setting("path", "/var/lib/edge-agent", "the only directory the service writes (systemd StateDirectory= creates it)",
                              must="dir_or_absent")
    signing_key: Path = setting("path", help="Ed25519 private key (PEM, 0600): signs events and audit checkpoints", private=True)
    watchlist_key: Path = setting("path", help="X25519 private key (PEM, 0600): opens sealed watchlist keys", private=True)
    authority_public_key: Path = setting("path", help="Ed25519 public key of the central authority")


@dataclass(frozen=True)
class HardwareConfig:
    profile: str = setting("string", help="board profile: a file name in hw/profiles without .toml")
    profiles_dir: Path | None = setting("path", None, "where to find profiles", must="dir")
    threads: int = setting("integer", _from_profile("threads"), "interpreter threads (TFLite/XNNPACK)", lo=1, hi=64)
    delegate: str = setting("choice", _from_profile("delegate"), "where the embedder runs", choices=DELEGATES)
    precision: str = setting("choice", "auto", "which variant of each model runs (edge_agent.vision.model_choice)", choices=PRECISION_CHOICES)


@dataclass(frozen=True)
class CaptureConfig:
    source: str = setting("string", help="frame source: picamera[:N], usb:N, /dev/videoN, a stream URL, a video file or a folder")
    width: int = setting("integer", _from_profile("capture_width"), "requested frame width (cameras)", lo=64, hi=8192)
    height: int = setting("integer", _from_profile("capture_height"), "requested frame height (cameras)", lo=64, hi=8192)
    fps: float = setting("number", _from_profile("capture_fps"), "requested camera frame rate", lo=0.0, hi=240.0, lo_open=True)
    file_mode: str = setting("choice", "every_frame", "a video file: every frame in order, or rehearsed as a live camera", choices=FILE_MODES)
    sample_fps: float | None = setting("number", None, "every_frame mode: sample a recording down to this rate",
                                       lo=0.0, hi=240.0, lo_open=True, optional=True)
    pixel_format: str = setting("choice", "RGB888", "picamera2 pixel format", choices=PIXEL_FORMATS)
    credentials_file: Path | None = setting("path", None, "stream credentials, one line user:password (0600)", private=True)


@dataclass(frozen=True)
class DetectorConfig:
    model: str = setting("choice", _from_profile("detector"), "BlazeFace full range, short range or both", choices=DETECTOR_MODELS)
    min_score: float = setting("number", 0.5, "minimum detection score", lo=0.0, hi=1.0, lo_open=True)
    # not checked here: the model loader verifies the files against models/manifest.toml
    models_dir: Path | None = setting("path", None, "model directory (None: the recognition core's default)", must="any")
    tiles: TileGrid = setting("parsed", "1x1", "detector tile grid for distant faces (1x1: whole frame only)",
                              check=_parse_tiles, allowed="must be COLSxROWS, each 1 to 4, or auto")


@dataclass(frozen=True)
class QualityConfig:
    min_face_px: int = setting("integer", int(DEFAULT_QUALITY.min_face_px), "minimum face box width in frame pixels (a gate: smaller faces are useless)", lo=8, hi=4096)
    min_blur: float = setting("number", DEFAULT_QUALITY.min_blur, "minimum Laplacian variance of the aligned crop", lo=0.0, hi=1e6)
    max_yaw_ratio: float = setting("number", DEFAULT_QUALITY.max_yaw, "maximum nose offset / eye distance", lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class PipelineConfig:
    track_iou: float = setting("number", 0.3, "box overlap that continues a face track", lo=0.0, hi=1.0, lo_open=True)
    track_max_age_s: float = setting("number", 1.0, "a track unseen this long ends", lo=0.0, hi=60.0, lo_open=True)
    alert_cooldown_s: float = setting("number", 60.0, "minimum time between two alerts for one subject", lo=0.0, hi=86400.0)
    max_faces_per_frame: int = setting("integer", 10, "faces processed per frame, largest first", lo=1, hi=100)
    recognise_every_s: float = setting("number", 0.2, "a tracked face is recognised again at least this often (sooner when closer or turned to the camera; 0: every frame)",
                                       lo=0.0, hi=10.0)
    idle_fps: float = setting("number", 5.0, "live sources, no face for idle_after_s: process at most this rate (0: off)", lo=0.0, hi=240.0)
    idle_after_s: float = setting("number", 2.0, "seconds without a face before idling", lo=0.1, hi=600.0)
    hot_temperature_c: float = setting("number", 75.0, "SoC at or above this: process at most hot_fps", lo=40.0, hi=110.0)
    hot_fps: float = setting("number", 2.0, "frames per second while hot (0: no thermal pacing)", lo=0.0, hi=240.0)


@dataclass(frozen=True)
class WatchlistConfig:
    # May be absent (a device may start before its first deployment and then matches nothing,
    # policing.md 1); the loaders verify it. A directory here is an error.
    package: Path | None = setting("path", None, "the encrypted, signed watchlist package (pushed per deployment)", must="file_or_absent")


@dataclass(frozen=True)
class DeploymentConfig:
    record: Path | None = setting("path", None, "the signed deployment record (pushed per deployment)", must="file_or_absent")
    approver_public_keys: tuple[Path, ...] = setting("paths", help="pinned keys that may approve a lowered threshold")


def _tls_needs(env: Any) -> Any:
    return REQUIRED if env["tls"] else None


@dataclass(frozen=True)
class MqttConfig:
    host: str = setting("string", help="broker host name or IP")
    port: int = setting("integer", Derived(lambda env: 8883 if env["tls"] else 1883, "8883 (TLS) / 1883"), "broker port", lo=1, hi=65535)
    tls: bool = setting("boolean", True, "TLS with a client certificate (false only to a loopback broker)")
    ca_file: Path | None = setting("path", Derived(_tls_needs, "required when tls"), "fleet CA certificate (PEM)")
    cert_file: Path | None = setting("path", Derived(_tls_needs, "required when tls"), "device client certificate (PEM), CN = device.id")
    key_file: Path | None = setting("path", Derived(_tls_needs, "required when tls"), "device client private key (PEM, 0600)", private=True)
    topic_prefix: str = setting("choice", TOPIC_PREFIX, "topic prefix, fixed by topics format v1", choices=TOPIC_PREFIXES)
    keepalive: int = setting("integer", 60, "MQTT keepalive seconds", lo=5, hi=3600)
    protocol: str = setting("choice", "5", "MQTT protocol version", choices=MQTT_PROTOCOLS)


@dataclass(frozen=True)
class SpoolConfig:
    path: Path = setting("path", Derived(lambda env: str(env["device"].state_dir / "spool"), "device.state_dir + /spool"),
                         "store-and-forward queue of signed events (created at run time)", must="file_or_absent")
    max_bytes: int = setting("integer", 256 * 1024 * 1024, "size cap of the spool on disk", lo=1024 * 1024, hi=1 << 40)
    max_age_days: float = setting("number", float(MAX_RETENTION_DAYS), "unsent events older than this are deleted",
                                  lo=0.0, hi=float(MAX_RETENTION_DAYS), lo_open=True)


@dataclass(frozen=True)
class ControlRoomConfig:
    crop_public_key: Path | None = setting("path", None, "X25519 public key (PEM) the alert face crop is sealed to")
    receipt_public_key: Path | None = setting(
        "path", None, "Ed25519 public key (PEM) the control room signs receipts with: an alert stays in the spool until a receipt it signed arrives"
    )


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = setting("number", 60.0, "seconds between telemetry messages", lo=1.0, hi=3600.0)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = setting("choice", "INFO", "log level (journald); no biometric data at any level", choices=LOG_LEVELS, fold_case=True)


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    config_version: int
    device: DeviceConfig
    hardware: HardwareConfig
    capture: CaptureConfig
    detector: DetectorConfig
    quality: QualityConfig
    pipeline: PipelineConfig
    watchlist: WatchlistConfig
    deployment: DeploymentConfig
    mqtt: MqttConfig | None  # None: no broker configured (offline replay / bench use)
    spool: SpoolConfig
    control_room: ControlRoomConfig
    telemetry: TelemetryConfig
    logging: LoggingConfig
    sha256: str = ""  # of the file's bytes as parsed: what the agent ran under (config_changed)
    values: tuple[tuple[str, str], ...] = ()  # every key the file set, flattened, for change reports


@dataclass(frozen=True)
class HardwareProfile:
    """One file in hw/profiles: what a board can sustain."""

    name: str  # the file name, not a key in the file
    description: str = setting("string", help="board and camera this profile is for")
    threads: int = setting("integer", help="default hardware.threads", lo=1, hi=64)
    delegate: str = setting("choice", help="default hardware.delegate", choices=DELEGATES)
    detector: str = setting("choice", help="default detector.model", choices=DETECTOR_MODELS)
    capture_width: int = setting("integer", help="default capture.width", lo=64, hi=8192)
    capture_height: int = setting("integer", help="default capture.height", lo=64, hi=8192)
    capture_fps: float = setting("number", help="default capture.fps", lo=0.0, hi=240.0, lo_open=True)


# Section name -> dataclass; the TOML keys of a section are exactly the dataclass's settings.
SECTIONS: dict[str, type] = {
    "device": DeviceConfig,
    "hardware": HardwareConfig,
    "capture": CaptureConfig,
    "detector": DetectorConfig,
    "quality": QualityConfig,
    "pipeline": PipelineConfig,
    "watchlist": WatchlistConfig,
    "deployment": DeploymentConfig,
    "mqtt": MqttConfig,
    "spool": SpoolConfig,
    "control_room": ControlRoomConfig,
    "telemetry": TelemetryConfig,
    "logging": LoggingConfig,
}
REQUIRED_SECTIONS = ("device", "hardware", "capture")


def documented_keys() -> set[str]:
    """Every ``section.key`` the loader accepts, plus top-level keys (pinned against the doc)."""
    keys = {"config_version"}
    for section, cls in SECTIONS.items():
        keys.update(f"{section}.{name}" for name, _ in specs(cls))
    return keys


def profile_keys() -> set[str]:
    return {"profile_version"} | {name for name, _ in specs(HardwareProfile)}


def _subtable(file: Path, root: dict[str, Any], section: str, required: bool) -> dict[str, Any] | None:
    value = root.get(section)
    if value is None:
        if required:
            raise ConfigError(f"{file}: section [{section}] is required", f"add a [{section}] table (see docs/formats/config.md)")
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: {section} = {value!r}: must be a table [{section}]", "see docs/formats/config.md")
    return value


# --- hardware profiles ------------------------------------------------------------------------
def load_profile(name: str, profiles_dir: Path | None = None) -> HardwareProfile:
    """Load hw/profiles/<name>.toml (from ``profiles_dir`` or the default locations)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name or ""):
        raise ConfigError(f"hardware profile name {name!r} is invalid", "use a file name from hw/profiles without .toml, e.g. pi5")
    dirs = (profiles_dir,) if profiles_dir is not None else default_profile_dirs()
    for d in dirs:
        path = Path(d) / f"{name}.toml"
        if path.is_file():
            break
    else:
        available = sorted({p.stem for d in dirs if Path(d).is_dir() for p in Path(d).glob("*.toml")})
        raise ConfigError(
            f"hardware profile {name!r} not found in {', '.join(str(d) for d in dirs)}",
            f"available profiles: {', '.join(available) or 'none'}",
        )
    data, _ = read_toml(path, "hardware profile", "check the profile file")
    t = Table(path, "", data, path.parent, check_files=False)
    t.read("profile_version", _PROFILE_VERSION_SPEC, REQUIRED)
    return read_section(t, HardwareProfile, given={"name": name})


_PROFILE_VERSION_SPEC = Spec("integer", lo=PROFILE_VERSION, hi=PROFILE_VERSION)


# --- the whole file ---------------------------------------------------------------------------
def load_config(path: str | Path, check_files: bool = True, profiles_dir: Path | None = None) -> AgentConfig:
    """Read and validate the agent config; raise ConfigError on the first problem found.

    ``check_files`` verifies that named files exist and private keys are 0600 (turn it off to
    validate a config on a workstation before the device's keys exist).
    """
    file = Path(path)
    root, raw = read_toml(file, "config file", MISSING_CONFIG_HINT)
    base = file.parent.resolve() if file.parent != Path("") else Path.cwd()
    top = Table(file, "", {k: v for k, v in root.items() if not isinstance(v, dict)}, base, check_files)
    version = top.get("config_version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise top.error("config_version", version, f"must be {CONFIG_VERSION} (this agent reads config format version {CONFIG_VERSION})")
    unknown_sections = sorted(k for k, v in root.items() if isinstance(v, dict) and k not in SECTIONS)
    if unknown_sections:
        raise ConfigError(
            f"{file}: [{unknown_sections[0]}] is not a known section",
            f"sections: {', '.join(SECTIONS)} (see docs/formats/config.md)",
        )
    top.done()

    def table(section: str) -> Table | None:
        data = _subtable(file, root, section, section in REQUIRED_SECTIONS)
        return None if data is None else Table(file, section, data, base, check_files)

    def required(section: str) -> Table:
        return Table(file, section, _subtable(file, root, section, True) or {}, base, check_files)

    env: dict[str, Any] = {}
    sections: dict[str, Any] = {}

    def read(section: str, given: dict[str, Any] | None = None, t: Table | None = None) -> Any:
        t = t or table(section) or Table(file, section, {}, base, check_files)
        sections[section] = env[section] = read_section(t, SECTIONS[section], env, given)
        return sections[section]

    read("device")

    # [hardware]: a named profile supplies the defaults of threads, delegate, capture and detector
    t = required("hardware")
    chosen = {name: t.read(name, spec, spec.default) for name, spec in specs(HardwareConfig) if name in ("profile", "profiles_dir")}
    env["hardware_profile"] = load_profile(chosen["profile"], chosen["profiles_dir"] if chosen["profiles_dir"] is not None else profiles_dir)
    read("hardware", chosen, t)

    t = required("capture")
    capture = read("capture", t=t)
    if not re.match(r"^(picamera(:\d+)?|usb:\d*|[a-z][a-z0-9+.-]*://.*)$", capture.source, re.IGNORECASE):
        # a video file or image folder: relative to the config file, like every other path
        source_path = t.expand_user("source", capture.source)
        if not source_path.is_absolute():
            sections["capture"] = replace(capture, source=str(base / source_path))
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", capture.source, re.IGNORECASE):
        raise t.error(
            "source", capture.source, "stream URL carries a password inline; secrets are never accepted inline",
            "remove user:password@ from the URL and put 'user:password' in a 0600 file named by capture.credentials_file",
            redact=True,
        )

    for (section, key), (message, hint) in RETIRED_KEYS.items():
        if isinstance(root.get(section), dict) and key in root[section]:
            raise ConfigError(f"{file}: {section}.{key} {message}", hint)
    for section in ("detector", "quality", "pipeline", "watchlist", "deployment"):
        read(section)

    sections["mqtt"] = None
    mqtt_table = table("mqtt")
    if mqtt_table is not None:
        t = mqtt_table
        mqtt = read("mqtt", t=t)
        if not mqtt.tls and not _is_loopback(mqtt.host):
            raise t.error(
                "tls", False, f"plain MQTT is only allowed to a broker on this machine (host is {mqtt.host!r})",
                "set mqtt.tls = true with ca_file, cert_file and key_file: alerts are encrypted in transit (policing.md 14)",
            )

    for section in ("spool", "control_room", "telemetry", "logging"):
        read(section)

    return AgentConfig(path=file, config_version=version, **sections, sha256=hashlib.sha256(raw).hexdigest(), values=_flatten(root))


def _flatten(root: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``section.key`` -> repr(value) for every key the file set (paths and numbers; never a secret:
    a secret-named key or inline key material is refused before this runs)."""
    out = []
    for key, value in root.items():
        if isinstance(value, dict):
            out += [(f"{key}.{k}", repr(v)) for k, v in value.items()]
        else:
            out.append((key, repr(value)))
    return tuple(sorted(out))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
