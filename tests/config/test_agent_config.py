"""agent.toml validation: real files, real key files and modes, every profile and the shipped template."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.agent.config import (
    AgentConfig,
    documented_keys,
    load_config,
    load_profile,
    profile_keys,
)
from edge_agent.crypto.keyfiles import write_private_key, write_public_key
from edge_agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "hw" / "profiles"
TEMPLATE = REPO / "deploy" / "templates" / "agent.toml"
DOC = REPO / "docs" / "formats" / "config.md"


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    """A config directory with real key files, as provisioning leaves it."""
    keys = tmp_path / "keys"
    sign = Ed25519PrivateKey.generate()
    write_private_key(keys / "device_ed25519.key", sign)
    write_private_key(keys / "device_x25519.key", X25519PrivateKey.generate())
    write_public_key(keys / "authority_ed25519.pub", Ed25519PrivateKey.generate().public_key())
    write_public_key(keys / "control_room_x25519.pub", X25519PrivateKey.generate().public_key())
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tls / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    write_private_key(tls / "client.key", Ed25519PrivateKey.generate())
    (tmp_path / "state").mkdir()
    return tmp_path


BASE = """
[device]
id = "bwv-0042"
state_dir = "state"
signing_key = "keys/device_ed25519.key"
watchlist_key = "keys/device_x25519.key"
authority_public_key = "keys/authority_ed25519.pub"

[hardware]
profile = "pi4"

[capture]
source = "usb:0"

[mqtt]
host = "broker.example"
ca_file = "tls/ca.pem"
cert_file = "tls/client.pem"
key_file = "tls/client.key"

[control_room]
crop_public_key = "keys/control_room_x25519.pub"
"""


def write(dir_: Path, text: str) -> Path:
    path = dir_ / "agent.toml"
    path.write_text(text)
    return path


def test_minimal_config_resolves_paths_profile_and_defaults(device_dir):
    cfg = load_config(write(device_dir, BASE))
    assert isinstance(cfg, AgentConfig)
    assert cfg.device.id == "bwv-0042"
    assert cfg.device.signing_key == device_dir / "keys" / "device_ed25519.key"
    assert cfg.device.state_dir == device_dir / "state"
    # profile pi4 supplies threads, delegate, capture size/rate and detector
    assert (cfg.hardware.threads, cfg.hardware.delegate) == (4, "none")
    assert (cfg.capture.width, cfg.capture.height, cfg.capture.fps) == (960, 540, 15.0)
    assert cfg.detector.model == "full"
    assert cfg.capture.source == "usb:0", "device specs are not treated as paths"
    assert cfg.mqtt is not None
    assert (cfg.mqtt.port, cfg.mqtt.tls, cfg.mqtt.protocol, cfg.mqtt.topic_prefix) == (8883, True, "5", "lfr/v1")
    assert cfg.spool.path == device_dir / "state" / "spool"
    assert cfg.spool.max_age_days == 31
    assert cfg.logging.level == "INFO"
    with pytest.raises(FrozenInstanceError):
        cfg.device.id = "other"  # type: ignore[misc]


def test_overrides_beat_the_profile(device_dir):
    text = BASE.replace('profile = "pi4"', 'profile = "pi4"\nthreads = 2\ndelegate = "edgetpu"')
    text = text.replace('source = "usb:0"', 'source = "usb:0"\nwidth = 1920\nheight = 1080\nfps = 25')
    text += '\n[detector]\nmodel = "both"\ntiles = "3x2"\n'
    cfg = load_config(write(device_dir, text))
    assert (cfg.hardware.threads, cfg.hardware.delegate) == (2, "edgetpu")
    assert (cfg.capture.width, cfg.capture.height, cfg.capture.fps) == (1920, 1080, 25.0)
    assert cfg.detector.model == "both"
    assert (cfg.detector.tiles.cols, cfg.detector.tiles.rows) == (3, 2)
    assert load_config(write(device_dir, BASE)).detector.tiles.enabled is False


@pytest.mark.parametrize(
    "edit, key, allowed",
    [
        (("[mqtt]", "[mqtt]\nport = 70000"), "mqtt.port = 70000", "integer from 1 to 65535"),
        (("[mqtt]", '[mqtt]\nport = "8883"'), "mqtt.port = '8883'", "integer from 1 to 65535"),
        (("[mqtt]", '[mqtt]\nprotocol = "3.1.1"'), "mqtt.protocol = '3.1.1'", "one of '5'"),
        (("[mqtt]", "[mqtt]\nkeepalive = true"), "mqtt.keepalive = True", "integer from 5 to 3600"),
        (('id = "bwv-0042"', 'id = "bwv/0042"'), "device.id = 'bwv/0042'", "MQTT topic level"),
        (('profile = "pi4"', 'profile = "pi4"\ndelegate = "gpu"'), "hardware.delegate = 'gpu'", "'none', 'edgetpu'"),
        (('source = "usb:0"', 'source = "usb:0"\nfps = 0'), "capture.fps = 0", "greater than 0.0"),
        (("[control_room]", "[detector]\nmodel = \"huge\"\n[control_room]"), "detector.model = 'huge'", "'full', 'short', 'both'"),
        (("[control_room]", "[detector]\ntiles = \"8x8\"\n[control_room]"), "detector.tiles = '8x8'", "COLSxROWS, each 1 to 4"),
        (("[control_room]", "[spool]\nmax_age_days = 90\n[control_room]"), "spool.max_age_days = 90", "to 31"),
        (("[control_room]", "[logging]\nlevel = \"LOUD\"\n[control_room]"), "logging.level = 'LOUD'", "DEBUG, INFO"),
        (("[mqtt]", '[mqtt]\ntopic_prefix = "lfr/#"'), "mqtt.topic_prefix = 'lfr/#'", "one of 'lfr/v1'"),
        (("[control_room]", "[pipeline]\ntrack_iou = 1.5\n[control_room]"), "pipeline.track_iou = 1.5", "to 1.0"),
    ],
)
def test_bad_values_name_key_value_and_allowed(device_dir, edit, key, allowed):
    with pytest.raises(ConfigError) as info:
        load_config(write(device_dir, BASE.replace(*edit, 1)))
    assert key in info.value.message
    assert allowed in info.value.message
    assert str(device_dir / "agent.toml") in info.value.message


def test_unknown_keys_and_sections_are_rejected(device_dir):
    with pytest.raises(ConfigError, match=r"mqtt\.prot: unknown key \(allowed in \[mqtt\]: .*protocol"):
        load_config(write(device_dir, BASE.replace("[mqtt]", '[mqtt]\nprot = "5"')))
    with pytest.raises(ConfigError, match=r"\[mqtt_extra\] is not a known section"):
        load_config(write(device_dir, BASE + "\n[mqtt_extra]\nx = 1\n"))
    with pytest.raises(ConfigError, match=r"colour: unknown key"):
        load_config(write(device_dir, 'colour = "blue"\n' + BASE))


def test_the_retired_frame_policy_key_says_what_decides_instead(device_dir):
    """Issue 10.19: ``pipeline.frame_policy`` was parsed and never used. Live sources always hand
    over only the newest frame and recordings are read frame by frame (capture.file_mode), so the
    key is gone; a config that still sets it is told so rather than silently ignored."""
    assert "pipeline.frame_policy" not in documented_keys()
    with pytest.raises(ConfigError, match=r"pipeline\.frame_policy.*removed") as caught:
        load_config(write(device_dir, BASE + '\n[pipeline]\nframe_policy = "every_frame"\n'))
    assert "capture.file_mode" in caught.value.hint


def test_missing_required_section_and_key(device_dir):
    with pytest.raises(ConfigError, match=r"section \[capture\] is required"):
        load_config(write(device_dir, BASE.replace('[capture]\nsource = "usb:0"', "")))
    with pytest.raises(ConfigError, match=r"device\.signing_key: is required"):
        load_config(write(device_dir, BASE.replace('signing_key = "keys/device_ed25519.key"\n', "")))


def test_inline_secrets_are_rejected_and_never_echoed(device_dir):
    pem = (device_dir / "keys" / "device_ed25519.key").read_text()
    toml_pem = pem.replace("\n", "\\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(device_dir, BASE.replace('"keys/device_ed25519.key"', f'"{toml_pem}"')))
    assert "device.signing_key = <redacted>" in info.value.message
    assert "inline" in info.value.message
    assert "BEGIN" not in str(info.value) and pem.splitlines()[1] not in str(info.value)

    with pytest.raises(ConfigError, match=r"mqtt\.password: secrets are never accepted inline"):
        load_config(write(device_dir, BASE.replace("[mqtt]", '[mqtt]\npassword = "hunter2"')))
    b64 = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    with pytest.raises(ConfigError, match="looks like key material"):
        load_config(write(device_dir, BASE.replace('"keys/device_x25519.key"', f'"{b64}"')))
    with pytest.raises(ConfigError) as info:
        load_config(write(device_dir, BASE.replace('"usb:0"', '"rtsp://admin:hunter2@10.0.0.5/stream"')))
    assert "capture.source = <redacted>" in info.value.message and "hunter2" not in str(info.value)
    assert "credentials_file" in info.value.hint


def test_private_key_modes_and_missing_files(device_dir):
    key = device_dir / "tls" / "client.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mqtt\.key_file = '.*/tls/client\.key': private key file has mode 644") as info:
        load_config(write(device_dir, BASE))
    assert info.value.hint == f"run: chmod 600 {key}"
    key.chmod(0o600)
    (device_dir / "keys" / "authority_ed25519.pub").unlink()
    with pytest.raises(ConfigError, match=r"device\.authority_public_key = '.*authority_ed25519\.pub': file does not exist"):
        load_config(write(device_dir, BASE))
    # the same file validates on a workstation without the device's files
    assert load_config(write(device_dir, BASE), check_files=False).device.id == "bwv-0042"


def test_plain_mqtt_only_to_loopback(device_dir):
    plain = re.sub(r"\[mqtt\].*?\n\n", '[mqtt]\nhost = "127.0.0.1"\ntls = false\n\n', BASE, flags=re.DOTALL)
    cfg = load_config(write(device_dir, plain))
    assert cfg.mqtt.port == 1883 and cfg.mqtt.ca_file is None
    with pytest.raises(ConfigError, match=r"mqtt\.tls = False: plain MQTT is only allowed to a broker on this machine"):
        load_config(write(device_dir, plain.replace("127.0.0.1", "broker.example")))


def test_syntax_errors_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[device\nid = 1"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="config_version = 2: must be 1"):
        load_config(write(tmp_path, "config_version = 2\n" + BASE), check_files=False)


def test_unknown_profile_lists_available(device_dir):
    with pytest.raises(ConfigError, match="hardware profile 'pi3' not found") as info:
        load_config(write(device_dir, BASE.replace('"pi4"', '"pi3"')))
    assert "pi-zero-2w" in info.value.hint and "x86-dev" in info.value.hint


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES.glob("*.toml")))
def test_every_profile_loads_and_template_accepts_it(name, tmp_path):
    profile = load_profile(name)
    assert profile.name == name and profile.description
    text = TEMPLATE.read_text().replace('profile = "pi5"', f'profile = "{name}"')
    cfg = load_config(write(tmp_path, text), check_files=False)
    assert cfg.hardware.threads == profile.threads
    assert cfg.capture.fps == profile.capture_fps


def test_expected_profiles_exist():
    assert {p.stem for p in PROFILES.glob("*.toml")} >= {"pi5", "pi4", "pi4-coral-usb", "pi-zero-2w", "x86-dev"}
    assert load_profile("pi4-coral-usb").delegate == "edgetpu"


def test_bad_profile_file_is_rejected(tmp_path):
    (tmp_path / "odd.toml").write_text((PROFILES / "pi5.toml").read_text() + "\nturbo = true\n")
    with pytest.raises(ConfigError, match="turbo: unknown key"):
        load_profile("odd", tmp_path)


def test_shipped_template_validates():
    cfg = load_config(TEMPLATE, check_files=False)
    assert cfg.device.signing_key == TEMPLATE.parent / "keys" / "device_ed25519.key"  # relative to the file
    assert cfg.mqtt is not None and cfg.mqtt.tls


BROKER_TITLE = "## Control-room `[broker]` table"


def _doc_keys(section_title: str | None = None) -> set[str]:
    text = DOC.read_text()
    if section_title:
        text = text.split(section_title, 1)[1]
    else:
        text = text.split("## Hardware profile files", 1)[0]
    if section_title != BROKER_TITLE:
        text = text.split(BROKER_TITLE, 1)[0]
    text = text.split("## Changes", 1)[0]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.MULTILINE))


def test_doc_lists_exactly_the_accepted_keys():
    from edge_agent.config_reader import specs
    from edge_agent.events.mqtt_connection import BrokerFile

    assert "**Format version: 1**" in DOC.read_text()
    assert _doc_keys() == documented_keys()
    assert _doc_keys("## Hardware profile files") == profile_keys()
    assert _doc_keys(BROKER_TITLE) == {f"broker.{name}" for name, _ in specs(BrokerFile)}


def test_doc_defaults_match_the_loader(device_dir):
    """Every literal default in the doc's tables is what a minimal config actually gets."""
    cfg = load_config(write(device_dir, BASE + '\n[spool]\n[logging]\n'))
    text = DOC.read_text().split("## Hardware profile files", 1)[0]
    checked = 0
    for key, default in re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| [^|]+ \| ([^|]+) \|", text, flags=re.M):
        default = default.strip()
        section, name = key.split(".")
        actual = getattr(getattr(cfg, section), name)
        if re.fullmatch(r"-?\d+(\.\d+)?", default):
            assert actual == float(default), key
        elif re.fullmatch(r"`[^`]+`", default) and section != "device":
            assert str(actual) == default.strip("`"), key
        elif default in ("true", "false"):
            assert actual is (default == "true"), key
        else:
            continue
        checked += 1
    assert checked >= 15, "the table parser still finds the defaults"


def test_approver_public_keys_are_a_checked_list_of_paths(device_dir):
    (device_dir / "keys" / "approver.pub").write_text("placeholder; existence is what the config checks")
    cfg = load_config(write(device_dir, BASE + '\n[deployment]\napprover_public_keys = ["keys/approver.pub"]\n'))
    assert cfg.deployment.approver_public_keys == (device_dir / "keys" / "approver.pub",)
    with pytest.raises(ConfigError, match="deployment.approver_public_keys"):
        load_config(write(device_dir, BASE + '\n[deployment]\napprover_public_keys = "keys/approver.pub"\n'))
    with pytest.raises(ConfigError, match="file does not exist"):
        load_config(write(device_dir, BASE + '\n[deployment]\napprover_public_keys = ["keys/absent.pub"]\n'))


# --- issue 15.4: one declarative reader ---------------------------------------------------------
def test_every_key_is_declared_on_its_field_with_help():
    from edge_agent.agent.config import SECTIONS, HardwareProfile
    from edge_agent.config_reader import specs

    for cls in (*SECTIONS.values(), HardwareProfile):
        declared = specs(cls)
        assert declared, cls
        for name, spec in declared:
            assert spec.help, f"{cls.__name__}.{name} has no help"
            if spec.kind in ("integer", "number"):
                assert spec.lo is not None and spec.hi is not None, f"{cls.__name__}.{name} has no bounds"


def test_config_parsing_imports_no_opencv_or_litert():
    """A fresh interpreter: parsing the agent config (and the broker config) loads no OpenCV and no
    LiteRT (start-up pays for every import on a Pi Zero). The control is a module that does need them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import edge_agent.agent.config, edge_agent.events.mqtt_connection\n"
        "from edge_agent.agent.config import load_config\n"
        f"load_config({str(TEMPLATE)!r}, check_files=False)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('cv2', 'ai_edge_litert', 'tflite_runtime'))\n"
        "print(','.join(heavy) or 'none')\n"
        "import edge_agent.vision.detector\n"
        "print('cv2' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert out == ["none", "True"], out


@pytest.mark.parametrize(
    "edit, message, hint",
    [
        (lambda d, t: t.replace('state_dir = "state"', 'state_dir = "not-a-dir"'), r"device\.state_dir = '.*/not-a-dir': is a file, not a directory", "move the file away"),
        (lambda d, t: t + '\n[deployment]\nrecord = "incoming"\n', r"deployment\.record = '.*/incoming': is a directory, not a file", "the file itself"),
        (lambda d, t: t + '\n[watchlist]\npackage = "incoming"\n', r"watchlist\.package = '.*/incoming': is a directory, not a file", "the file itself"),
        (lambda d, t: t + '\n[spool]\npath = "incoming"\n', r"spool\.path = '.*/incoming': is a directory, not a file", "the file itself"),
        (lambda d, t: t.replace('"keys/authority_ed25519.pub"', '"keys"'), r"device\.authority_public_key = '.*/keys': is a directory, not a file", "name the file itself"),
    ],
)
def test_a_directory_where_a_file_belongs_and_the_reverse_are_named(device_dir, edit, message, hint):
    """Issue 11: these were tracebacks at start-up; now the config names the key and what is there."""
    (device_dir / "not-a-dir").write_text("a file")
    (device_dir / "incoming").mkdir()
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(device_dir, edit(device_dir, BASE)))
    assert hint in info.value.hint


def test_absent_pushed_files_are_fine_until_they_arrive(device_dir):
    text = BASE + '\n[watchlist]\npackage = "incoming/w.eawl"\n[deployment]\nrecord = "incoming/d.json"\n'
    cfg = load_config(write(device_dir, text.replace('state_dir = "state"', 'state_dir = "new-state"')))
    assert cfg.watchlist.package == device_dir / "incoming" / "w.eawl" and cfg.device.state_dir == device_dir / "new-state"


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .* is a directory, not a file") as info:
        load_config(tmp_path)
    assert "agent.toml" in info.value.hint


def test_config_records_the_hash_of_the_bytes_it_parsed(device_dir):
    import hashlib

    path = write(device_dir, BASE)
    cfg = load_config(path)
    assert cfg.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ("mqtt.host", "'broker.example'") in cfg.values and ("capture.source", "'usb:0'") in cfg.values


# --- the control room's [broker] table, read by the same reader ---------------------------------
@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    (tmp_path / "c.key").chmod(0o600)
    return tmp_path


BROKER = '[broker]\nurl = "mqtts://10.0.0.5:8884"\nca = "ca.pem"\ncert = "c.pem"\nkey = "c.key"\n'


@pytest.mark.parametrize(
    "text, message",
    [
        (BROKER + 'keepalive = 30\n', r"broker\.keepalive: unknown key \(allowed in \[broker\]: ca, cert, keepalive_s, key, url\)"),
        (BROKER + 'password = "hunter2"\n', r"broker\.password: secrets are never accepted inline"),
        (BROKER + 'keepalive_s = 0\n', r"broker\.keepalive_s = 0: must be an integer from 5 to 3600"),
        (BROKER.replace('"c.key"', '"absent.key"'), r"broker\.key = '.*absent\.key': file does not exist"),
    ],
)
def test_broker_table_is_read_as_strictly_as_the_agent_config(broker_dir, text, message):
    from edge_agent.events.mqtt_connection import BrokerConfig

    (broker_dir / "cr.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        BrokerConfig.from_toml(broker_dir / "cr.toml")


def test_broker_key_must_be_owner_only(broker_dir):
    from edge_agent.events.mqtt_connection import BrokerConfig

    (broker_dir / "cr.toml").write_text(BROKER)
    assert BrokerConfig.from_toml(broker_dir / "cr.toml").keepalive_s == 30
    (broker_dir / "c.key").chmod(0o644)
    with pytest.raises(ConfigError, match=r"broker\.key = .*private key file has mode 644") as info:
        BrokerConfig.from_toml(broker_dir / "cr.toml")
    assert info.value.hint == f"run: chmod 600 {broker_dir / 'c.key'}"
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        BrokerConfig.from_toml(broker_dir)
