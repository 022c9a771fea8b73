"""The agent's one TOML configuration file, validated completely at start-up.

Why so strict: a device in the field has nobody to read a stack trace. Every problem is found
before the camera opens, and the error names the key path (``mqtt.port``), the bad value and
what is allowed. Unknown keys are errors (a typo must not silently fall back to a default).
Secrets are never written inline: keys and credentials are named by file path, and private key
files must be readable by their owner only. Format: docs/formats/config.md (version 1).
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.identifiers import MAX_RETENTION_DAYS, PIXEL_FORMATS, TOPIC_PREFIX, IdentifierError, check_device_id
from edge_agent.vision.quality import QualityPolicy
from edge_agent.vision.tiling import TileGrid

CONFIG_VERSION = 1
PROFILE_VERSION = 1

DETECTOR_MODELS = ("full", "short", "both")
DELEGATES = ("none", "edgetpu")
FILE_MODES = ("every_frame", "live")
FRAME_POLICIES = ("latest", "every_frame")
MQTT_PROTOCOLS = ("5",)  # the publisher speaks MQTT 5 (PUBACK reason codes, session expiry)
TOPIC_PREFIXES = (TOPIC_PREFIX,)
DEFAULT_QUALITY = QualityPolicy()  # the quality gates' defaults live with the gates  # topics format v1 (docs/formats/topics.md)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Key names that can only ever hold a secret: never accepted inline, whatever the section.
SECRET_NAMES = re.compile(r"(^|_)(password|passphrase|secret|token|private_key|psk)$")
# Keys whose values are paths to key material: the value must look like a path, not a key.
KEY_PATH_NAMES = re.compile(r"(_key|key_file|credentials_file)$")
INLINE_KEY = re.compile(r"-----BEGIN|\n|^(?!/)[A-Za-z0-9+/]{40,}={0,2}$")


def default_profile_dirs() -> tuple[Path, ...]:
    """Where hardware profiles live: a source checkout's hw/profiles, then the installed copy."""
    return (Path(__file__).resolve().parents[2] / "hw" / "profiles", Path("/opt/edge-agent/hw/profiles"))


# --- the validated configuration --------------------------------------------------------------
@dataclass(frozen=True)
class DeviceConfig:
    id: str
    state_dir: Path
    signing_key: Path  # Ed25519 private key (PEM, 0600): signs events and audit checkpoints
    watchlist_key: Path  # X25519 private key (PEM, 0600): opens sealed watchlist keys
    authority_public_key: Path  # Ed25519 public key of the central authority


@dataclass(frozen=True)
class HardwareConfig:
    profile: str
    profiles_dir: Path | None
    threads: int
    delegate: str


@dataclass(frozen=True)
class CaptureConfig:
    source: str
    width: int
    height: int
    fps: float
    file_mode: str
    sample_fps: float | None
    pixel_format: str
    credentials_file: Path | None


@dataclass(frozen=True)
class DetectorConfig:
    model: str
    min_score: float
    models_dir: Path | None  # None: the recognition core's default (the checkout's models/)
    tiles: TileGrid  # 1x1: whole frame only


@dataclass(frozen=True)
class QualityConfig:
    min_face_px: int
    min_blur: float
    max_yaw_ratio: float


@dataclass(frozen=True)
class PipelineConfig:
    track_iou: float
    track_max_age_s: float
    alert_cooldown_s: float
    frame_policy: str
    max_faces_per_frame: int
    idle_fps: float  # live sources, no face for idle_after_s: process at most this rate (0: off)
    idle_after_s: float
    hot_temperature_c: float  # SoC at or above this: process at most hot_fps (0: off)
    hot_fps: float


@dataclass(frozen=True)
class WatchlistConfig:
    package: Path | None


@dataclass(frozen=True)
class DeploymentConfig:
    record: Path | None
    approver_public_keys: tuple[Path, ...]  # pinned keys that may approve a lowered threshold


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    tls: bool
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    topic_prefix: str
    keepalive: int
    protocol: str


@dataclass(frozen=True)
class SpoolConfig:
    path: Path
    max_bytes: int
    max_age_days: float


@dataclass(frozen=True)
class ControlRoomConfig:
    crop_public_key: Path | None


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float


@dataclass(frozen=True)
class LoggingConfig:
    level: str


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


@dataclass(frozen=True)
class HardwareProfile:
    """One file in hw/profiles: what a board can sustain."""

    name: str
    description: str
    threads: int
    delegate: str
    detector: str
    capture_width: int
    capture_height: int
    capture_fps: float


# Section name -> dataclass; the TOML keys of a section are exactly the dataclass's fields.
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


def documented_keys() -> set[str]:
    """Every ``section.key`` the loader accepts, plus top-level keys (pinned against the doc)."""
    keys = {"config_version"}
    for section, cls in SECTIONS.items():
        keys.update(f"{section}.{f.name}" for f in fields(cls))
    return keys


def profile_keys() -> set[str]:
    return {"profile_version"} | {f.name for f in fields(HardwareProfile) if f.name != "name"}


# --- reading and checking values --------------------------------------------------------------
_REQUIRED = object()


class _Table:
    """Reads one TOML table, remembering which keys were used so leftovers can be reported."""

    def __init__(self, file: Path, prefix: str, data: dict[str, Any], base_dir: Path, check_files: bool) -> None:
        self.file, self.prefix, self.data, self.base_dir, self.check_files = file, prefix, data, base_dir, check_files
        self.used: set[str] = set()
        for key in data:
            if SECRET_NAMES.search(key):
                raise self.error(
                    key, None, "secrets are never accepted inline",
                    f"put the secret in a file readable only by the agent (chmod 600) and name the file instead; remove '{self.name(key)}'",
                )

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, value: Any, allowed: str, hint: str = "", *, redact: bool = False) -> ConfigError:
        redact = redact or bool(SECRET_NAMES.search(key))
        shown = "<redacted>" if redact else repr(value)
        what = f"{self.name(key)} = {shown}" if value is not None else self.name(key)
        return ConfigError(f"{self.file}: {what}: {allowed}", hint or f"fix {self.name(key)} in {self.file}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise self.error(key, None, "is required", f"add {key} = ... under [{self.prefix}] in {self.file}")
        return default

    def string(self, key: str, default: Any = _REQUIRED, *, pattern: re.Pattern[str] | None = None, allowed: str = "") -> str:
        value = self._get(key, default)
        if value is None:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, value, "must be a non-empty string")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, value, f"must be {allowed or 'of the form ' + pattern.pattern}")
        return value

    def identifier(self, key: str, check: Any) -> str:
        """A value checked by its one rule in edge_agent.identifiers, reported with this key's path."""
        value = self._get(key, _REQUIRED)
        try:
            return check(value)
        except IdentifierError as exc:
            raise self.error(key, value, f"{exc.message}; {exc.hint}") from None

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str:
        value = self._get(key, default)
        if value not in choices:
            raise self.error(key, value, f"must be one of {', '.join(repr(c) for c in choices)}")
        return value

    def tiles(self, key: str) -> TileGrid:
        value = self._get(key, "1x1")
        try:
            return TileGrid.parse(value)
        except ConfigError as exc:
            raise self.error(key, value, "must be COLSxROWS, each 1 to 4, or auto", exc.hint) from None

    def integer(self, key: str, default: Any = _REQUIRED, *, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, value, f"must be an integer from {lo} to {hi}")
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, lo: float, hi: float, lo_open: bool = False) -> float:
        value = self._get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            ok = (lo < value if lo_open else lo <= value) and value <= hi
        if not ok:
            bound = f"greater than {lo}" if lo_open else f"from {lo}"
            raise self.error(key, value, f"must be a number {bound} to {hi}")
        return float(value)

    def optional_number(self, key: str, *, lo: float, hi: float) -> float | None:
        if key not in self.data:
            self.used.add(key)
            return None
        return self.number(key, lo=lo, hi=hi, lo_open=True)

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def paths(self, key: str, *, must: str = "file") -> tuple[Path, ...]:
        """A list of paths (default empty), each resolved and checked like :meth:`path`."""
        values = self._get(key, [])
        if not isinstance(values, list):
            raise self.error(key, values, "must be a list of file paths")
        return tuple(self._resolve(key, value, must, False) for value in values)

    def path(self, key: str, default: Any = _REQUIRED, *, must: str = "file", private: bool = False) -> Path | None:
        """A path resolved against the config file's directory; checked when check_files is on.

        ``must``: "file" (an existing file), "dir" (an existing directory) or "any" (not checked).
        """
        value = self._get(key, default)
        return None if value is None else self._resolve(key, value, must, private)

    def _resolve(self, key: str, value: Any, must: str, private: bool) -> Path:
        if isinstance(value, Path):
            raw = str(value)
        elif isinstance(value, str) and value.strip():
            raw = value
        else:
            raise self.error(key, value, "must be a file path (a non-empty string)")
        if KEY_PATH_NAMES.search(key) and INLINE_KEY.search(raw):
            raise self.error(
                key, value, "looks like key material written inline; keys are named by file path only",
                f"save the key to a file (chmod 600 for private keys) and set {self.name(key)} to its path",
                redact=True,
            )
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = (self.base_dir / path)
        path = Path(*path.parts)  # normalise without resolving symlinks
        if self.check_files and must != "any":
            if must == "file" and not path.is_file():
                raise self.error(key, str(path), "file does not exist", f"create it (provisioning writes it) or correct {self.name(key)}")
            if must == "dir" and not path.is_dir():
                raise self.error(key, str(path), "directory does not exist", f"create it or correct {self.name(key)}")
            if private:
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    raise self.error(
                        key, str(path), f"private key file has mode {mode:o}; it must be readable by its owner only (0600)",
                        f"run: chmod 600 {path}",
                    )
        return path

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            key = unknown[0]
            allowed = ", ".join(sorted(self.used))
            raise self.error(key, None, f"unknown key (allowed in [{self.prefix}]: {allowed})" if self.prefix else
                             f"unknown key (allowed: {allowed})")


def _subtable(file: Path, root: dict[str, Any], section: str, required: bool) -> dict[str, Any] | None:
    value = root.get(section)
    if value is None:
        if required:
            raise ConfigError(f"{file}: section [{section}] is required", f"add a [{section}] table (see docs/formats/config.md)")
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: {section} = {value!r}: must be a table [{section}]", "see docs/formats/config.md")
    return value


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found", "check the path (default /etc/edge-agent/agent.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}", "fix the syntax at the line and column shown") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text", "save the file as UTF-8") from None


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
    data = _read_toml(path, "hardware profile")
    t = _Table(path, "", data, path.parent, check_files=False)
    version = t.integer("profile_version", lo=PROFILE_VERSION, hi=PROFILE_VERSION)
    del version
    profile = HardwareProfile(
        name=name,
        description=t.string("description"),
        threads=t.integer("threads", lo=1, hi=64),
        delegate=t.choice("delegate", DELEGATES),
        detector=t.choice("detector", DETECTOR_MODELS),
        capture_width=t.integer("capture_width", lo=64, hi=8192),
        capture_height=t.integer("capture_height", lo=64, hi=8192),
        capture_fps=t.number("capture_fps", lo=0.0, hi=240.0, lo_open=True),
    )
    t.done()
    return profile


# --- the whole file ---------------------------------------------------------------------------
def load_config(path: str | Path, check_files: bool = True, profiles_dir: Path | None = None) -> AgentConfig:
    """Read and validate the agent config; raise ConfigError on the first problem found.

    ``check_files`` verifies that named files exist and private keys are 0600 (turn it off to
    validate a config on a workstation before the device's keys exist).
    """
    file = Path(path)
    root = _read_toml(file, "config file")
    base = file.parent.resolve() if file.parent != Path("") else Path.cwd()
    top = _Table(file, "", {k: v for k, v in root.items() if not isinstance(v, dict)}, base, check_files)
    version = top._get("config_version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise top.error("config_version", version, f"must be {CONFIG_VERSION} (this agent reads config format version {CONFIG_VERSION})")
    unknown_sections = sorted(k for k, v in root.items() if isinstance(v, dict) and k not in SECTIONS)
    if unknown_sections:
        raise ConfigError(
            f"{file}: [{unknown_sections[0]}] is not a known section",
            f"sections: {', '.join(SECTIONS)} (see docs/formats/config.md)",
        )
    top.done()

    def table(section: str, required: bool = False) -> _Table | None:
        data = _subtable(file, root, section, required)
        return None if data is None else _Table(file, section, data, base, check_files)

    def empty(section: str) -> _Table:
        return _Table(file, section, {}, base, check_files)

    # [device]
    t = table("device", required=True)
    device = DeviceConfig(
        id=t.identifier("id", check_device_id),
        state_dir=t.path("state_dir", "/var/lib/edge-agent", must="any"),  # systemd StateDirectory= creates it
        signing_key=t.path("signing_key", private=True),
        watchlist_key=t.path("watchlist_key", private=True),
        authority_public_key=t.path("authority_public_key"),
    )
    t.done()

    # [hardware]: a named profile, with optional overrides
    t = table("hardware", required=True)
    profile_name = t.string("profile")
    pdir = t.path("profiles_dir", None, must="dir")
    profile = load_profile(profile_name, pdir if pdir is not None else profiles_dir)
    hardware = HardwareConfig(
        profile=profile_name,
        profiles_dir=pdir,
        threads=t.integer("threads", profile.threads, lo=1, hi=64),
        delegate=t.choice("delegate", DELEGATES, profile.delegate),
    )
    t.done()

    # [capture]: size and rate default to the profile's
    t = table("capture", required=True)
    capture = CaptureConfig(
        source=t.string("source"),
        width=t.integer("width", profile.capture_width, lo=64, hi=8192),
        height=t.integer("height", profile.capture_height, lo=64, hi=8192),
        fps=t.number("fps", profile.capture_fps, lo=0.0, hi=240.0, lo_open=True),
        file_mode=t.choice("file_mode", FILE_MODES, "every_frame"),
        sample_fps=t.optional_number("sample_fps", lo=0.0, hi=240.0),
        pixel_format=t.choice("pixel_format", PIXEL_FORMATS, "RGB888"),
        credentials_file=t.path("credentials_file", None, private=True),
    )
    if not re.match(r"^(picamera(:\d+)?|usb:\d*|[a-z][a-z0-9+.-]*://.*)$", capture.source, re.IGNORECASE):
        # a video file or image folder: relative to the config file, like every other path
        source_path = Path(capture.source).expanduser()
        if not source_path.is_absolute():
            capture = replace(capture, source=str(base / source_path))
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", capture.source, re.IGNORECASE):
        raise t.error(
            "source", capture.source, "stream URL carries a password inline; secrets are never accepted inline",
            "remove user:password@ from the URL and put 'user:password' in a 0600 file named by capture.credentials_file",
            redact=True,
        )
    t.done()

    t = table("detector") or empty("detector")
    detector = DetectorConfig(
        model=t.choice("model", DETECTOR_MODELS, profile.detector),
        min_score=t.number("min_score", 0.5, lo=0.0, hi=1.0, lo_open=True),
        # not checked here: the model loader verifies the files against models/manifest.toml
        models_dir=t.path("models_dir", None, must="any"),
        tiles=t.tiles("tiles"),
    )
    t.done()

    t = table("quality") or empty("quality")
    quality = QualityConfig(
        min_face_px=t.integer("min_face_px", int(DEFAULT_QUALITY.min_face_px), lo=8, hi=4096),
        min_blur=t.number("min_blur", DEFAULT_QUALITY.min_blur, lo=0.0, hi=1e6),
        max_yaw_ratio=t.number("max_yaw_ratio", DEFAULT_QUALITY.max_yaw, lo=0.0, hi=1.0, lo_open=True),
    )
    t.done()

    t = table("pipeline") or empty("pipeline")
    pipeline = PipelineConfig(
        track_iou=t.number("track_iou", 0.3, lo=0.0, hi=1.0, lo_open=True),
        track_max_age_s=t.number("track_max_age_s", 1.0, lo=0.0, hi=60.0, lo_open=True),
        alert_cooldown_s=t.number("alert_cooldown_s", 60.0, lo=0.0, hi=86400.0),
        frame_policy=t.choice("frame_policy", FRAME_POLICIES, "latest"),
        max_faces_per_frame=t.integer("max_faces_per_frame", 10, lo=1, hi=100),
        idle_fps=t.number("idle_fps", 5.0, lo=0.0, hi=240.0),
        idle_after_s=t.number("idle_after_s", 2.0, lo=0.1, hi=600.0),
        hot_temperature_c=t.number("hot_temperature_c", 75.0, lo=40.0, hi=110.0),
        hot_fps=t.number("hot_fps", 2.0, lo=0.0, hi=240.0),
    )
    t.done()

    t = table("watchlist") or empty("watchlist")
    # Existence is not checked here: a device may start before its first deployment arrives, and
    # then runs without matching (policing.md 1); the loaders report a missing or bad package.
    watchlist = WatchlistConfig(package=t.path("package", None, must="any"))
    t.done()

    t = table("deployment") or empty("deployment")
    deployment = DeploymentConfig(record=t.path("record", None, must="any"), approver_public_keys=t.paths("approver_public_keys"))
    t.done()

    mqtt = None
    t = table("mqtt")
    if t is not None:
        host = t.string("host")
        tls = t.boolean("tls", True)
        need = _REQUIRED if tls else None
        mqtt = MqttConfig(
            host=host,
            port=t.integer("port", 8883 if tls else 1883, lo=1, hi=65535),
            tls=tls,
            ca_file=t.path("ca_file", need),
            cert_file=t.path("cert_file", need),
            key_file=t.path("key_file", need, private=True),
            topic_prefix=t.choice("topic_prefix", TOPIC_PREFIXES, TOPIC_PREFIX),
            keepalive=t.integer("keepalive", 60, lo=5, hi=3600),
            protocol=t.choice("protocol", MQTT_PROTOCOLS, "5"),
        )
        if not tls and not _is_loopback(host):
            raise t.error(
                "tls", False, f"plain MQTT is only allowed to a broker on this machine (host is {host!r})",
                "set mqtt.tls = true with ca_file, cert_file and key_file: alerts are encrypted in transit (policing.md 14)",
            )
        t.done()

    t = table("spool") or empty("spool")
    spool = SpoolConfig(
        path=t.path("path", str(device.state_dir / "spool"), must="any"),
        max_bytes=t.integer("max_bytes", 256 * 1024 * 1024, lo=1024 * 1024, hi=1 << 40),
        max_age_days=t.number("max_age_days", float(MAX_RETENTION_DAYS), lo=0.0, hi=float(MAX_RETENTION_DAYS), lo_open=True),
    )
    t.done()

    t = table("control_room") or empty("control_room")
    control_room = ControlRoomConfig(crop_public_key=t.path("crop_public_key", None))
    t.done()

    t = table("telemetry") or empty("telemetry")
    telemetry = TelemetryConfig(interval_s=t.number("interval_s", 60.0, lo=1.0, hi=3600.0))
    t.done()

    t = table("logging") or empty("logging")
    level = t._get("level", "INFO")
    if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
        raise t.error("level", level, f"must be one of {', '.join(LOG_LEVELS)}")
    logging_cfg = LoggingConfig(level=level.upper())
    t.done()

    return AgentConfig(
        path=file, config_version=version, device=device, hardware=hardware, capture=capture, detector=detector,
        quality=quality, pipeline=pipeline, watchlist=watchlist, deployment=deployment, mqtt=mqtt, spool=spool,
        control_room=control_room, telemetry=telemetry, logging=logging_cfg,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
