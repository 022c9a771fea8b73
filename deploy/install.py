#!/usr/bin/env python3
"""Install edge-agent on a Raspberry Pi OS (Debian bookworm) device. Standard library only.

  sudo python3 deploy/install.py --config-dir devices/bwv-0001      # on the device
  python3 deploy/install.py --root /tmp/stage --config-dir ...       # into a staging root (tests, image builds)

What it does (idempotent: a second run changes nothing and reports "unchanged"):
  * system user/group ``edge-agent`` (no login, home /var/lib/edge-agent), member of ``video``;
  * /opt/edge-agent: models, hardware profiles, a venv with the package (from bundle wheels);
  * /etc/systemd/system/edge-agent.service and the Coral udev rule;
  * /etc/edge-agent: agent.toml (0640 root:edge-agent), keys and TLS files, private keys
    0600 owned by edge-agent; existing keys are never replaced by different ones;
  * /var/lib/edge-agent (0700 edge-agent:edge-agent);
  * /opt/edge-agent/install-manifest.json: every installed path with its intended owner,
    group, mode (and sha256 for files), so an image build or a test can check them.

With ``--root`` nothing outside the staging root is touched: no user is created, no chown is
done (owners are recorded in the manifest instead), and the venv is deferred because a venv
is not relocatable (its scripts hard-code their own path). Modes are always set for real.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

USER = "edge-agent"
GROUP = "edge-agent"
CAMERA_GROUP = "video"
MANIFEST_VERSION = 1
PRIVATE_SUFFIXES = (".key",)


class InstallError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class Installer:
    root: Path
    source: Path
    config_dir: Path | None
    staging: bool
    skip_venv: bool
    python: str = sys.executable
    manifest: dict[str, dict[str, str]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    # -- helpers -----------------------------------------------------------------------------
    def target(self, abs_path: str) -> Path:
        return self.root / abs_path.lstrip("/")

    def record(self, abs_path: str, kind: str, owner: str, group: str, mode: int, digest: str | None = None) -> None:
        entry = {"type": kind, "owner": owner, "group": group, "mode": f"{mode:04o}"}
        if digest:
            entry["sha256"] = digest
        self.manifest[abs_path] = entry

    def chown(self, path: Path, owner: str, group: str) -> None:
        if self.staging:
            return  # recorded in the manifest; the real owner is set when installed on the device
        os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid, follow_symlinks=False)

    def directory(self, abs_path: str, owner: str, group: str, mode: int) -> None:
        path = self.target(abs_path)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise InstallError(f"{path} exists and is not a directory", "move it away and run the installer again")
        if not path.exists():
            path.mkdir(parents=True)
            self.changes.append(f"created {abs_path}/")
        os.chmod(path, mode)
        self.chown(path, owner, group)
        self.record(abs_path, "dir", owner, group, mode)

    def file(self, abs_path: str, data: bytes, owner: str, group: str, mode: int, *, replace: bool = True) -> None:
        """Write ``data`` unless identical; ``replace=False`` refuses to change different content (keys)."""
        path = self.target(abs_path)
        digest = hashlib.sha256(data).hexdigest()
        if path.is_symlink():
            raise InstallError(f"{path} is a symlink", "remove it; the installer writes regular files only")
        if path.exists():
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                if not replace:
                    raise InstallError(
                        f"{abs_path} already exists with different content",
                        "device keys are never replaced by the installer; move the old file away deliberately if this is a re-provisioned device",
                    )
                self._write(path, data, mode)
                self.changes.append(f"updated {abs_path}")
        else:
            self._write(path, data, mode)
            self.changes.append(f"created {abs_path}")
        os.chmod(path, mode)
        self.chown(path, owner, group)
        self.record(abs_path, "file", owner, group, mode, digest)

    @staticmethod
    def _write(path: Path, data: bytes, mode: int) -> None:
        """Write via a temporary file created with the final mode, then rename (never world-readable, never half-written)."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def run(self, *cmd: str) -> None:
        self.actions.append(" ".join(cmd))
        subprocess.run(cmd, check=True)

    # -- steps -------------------------------------------------------------------------------
    def user(self) -> None:
        if self.staging:
            self.actions.append(f"skipped (staging root): create system user {USER} with groups {CAMERA_GROUP}")
            return
        try:
            pwd.getpwnam(USER)
        except KeyError:
            self.run("useradd", "--system", "--user-group", "--home-dir", "/var/lib/edge-agent", "--no-create-home",
                     "--shell", "/usr/sbin/nologin", "--groups", CAMERA_GROUP, USER)
            return
        groups = {g.gr_name for g in grp.getgrall() if USER in g.gr_mem}
        if CAMERA_GROUP not in groups:
            self.run("usermod", "--append", "--groups", CAMERA_GROUP, USER)

    def layout(self) -> None:
        self.directory("/opt/edge-agent", "root", "root", 0o755)
        self.directory("/etc/edge-agent", "root", GROUP, 0o750)
        self.directory("/var/lib/edge-agent", USER, GROUP, 0o700)

    def payload(self) -> None:
        unit = self.source / "systemd" / "edge-agent.service"
        if not unit.is_file():
            raise InstallError(f"{unit} not found", "run the installer from the project checkout or an unpacked bundle")
        self.directory("/etc/systemd/system", "root", "root", 0o755)
        self.file("/etc/systemd/system/edge-agent.service", unit.read_bytes(), "root", "root", 0o644)
        rule = self.source / "deploy" / "udev" / "71-edge-agent-coral.rules"
        self.directory("/etc/udev/rules.d", "root", "root", 0o755)
        self.file("/etc/udev/rules.d/71-edge-agent-coral.rules", rule.read_bytes(), "root", "root", 0o644)

        self.directory("/opt/edge-agent/hw", "root", "root", 0o755)
        self.directory("/opt/edge-agent/hw/profiles", "root", "root", 0o755)
        for prof in sorted((self.source / "hw" / "profiles").glob("*.toml")):
            self.file(f"/opt/edge-agent/hw/profiles/{prof.name}", prof.read_bytes(), "root", "root", 0o644)
        models = self.source / "models"
        self.directory("/opt/edge-agent/models", "root", "root", 0o755)
        for model in sorted([*models.glob("*.tflite"), *models.glob("manifest.toml")]):
            self.file(f"/opt/edge-agent/models/{model.name}", model.read_bytes(), "root", "root", 0o644)
        template = self.source / "deploy" / "templates" / "agent.toml"
        self.file("/etc/edge-agent/agent.toml.example", template.read_bytes(), "root", GROUP, 0o640)

    def configuration(self) -> None:
        if self.config_dir is None:
            self.actions.append("no --config-dir: /etc/edge-agent/agent.toml not installed (provision the device first)")
            return
        cfg = self.config_dir / "agent.toml"
        if not cfg.is_file():
            raise InstallError(f"{cfg} not found", "pass the directory written by: python deploy/provision.py device ...")
        self.file("/etc/edge-agent/agent.toml", cfg.read_bytes(), "root", GROUP, 0o640)
        for sub in ("keys", "tls"):
            src = self.config_dir / sub
            if not src.is_dir():
                continue
            self.directory(f"/etc/edge-agent/{sub}", "root", GROUP, 0o750)
            for item in sorted(src.iterdir()):
                if not item.is_file():
                    continue
                dest = f"/etc/edge-agent/{sub}/{item.name}"
                if item.name.endswith(PRIVATE_SUFFIXES):
                    self.file(dest, item.read_bytes(), USER, GROUP, 0o600, replace=False)
                else:
                    # the device's own identity never changes under it; CA, certificates and
                    # the authority/control-room public keys may be renewed
                    self.file(dest, item.read_bytes(), "root", GROUP, 0o640, replace=not item.name.startswith("device_"))

    def venv(self) -> None:
        venv = "/opt/edge-agent/venv"
        if self.staging or self.skip_venv:
            why = "staging root: a venv is not relocatable" if self.staging else "--skip-venv"
            self.actions.append(f"deferred ({why}): python3 -m venv --system-site-packages {venv} and pip install edge_agent")
            return
        path = self.target(venv)
        if not (path / "bin" / "python").exists():
            # system site-packages: picamera2 and libcamera come from apt (python3-picamera2)
            self.run(self.python, "-m", "venv", "--system-site-packages", str(path))
        wheels = self.source / "wheels"
        pip = [str(path / "bin" / "pip"), "install", "--upgrade"]
        if wheels.is_dir():
            self.run(*pip, "--no-index", "--find-links", str(wheels), "edge_agent")
        else:
            self.run(*pip, str(self.source))
        self.record(venv, "dir", "root", "root", 0o755)

    def activate(self) -> None:
        if self.staging:
            self.actions.append("skipped (staging root): systemctl daemon-reload; systemctl enable edge-agent; udevadm control --reload-rules")
            return
        # Installing into an SD card's root from a workstation (chroot, deploy/README.md 3b) or an
        # image build: no systemd is running there, so only the offline parts apply; the unit is
        # enabled and starts at first boot, and udev reads the rule when it starts.
        running = Path("/run/systemd/system").is_dir()
        if running:
            self.run("systemctl", "daemon-reload")
        self.run("systemctl", "enable", "edge-agent.service")
        if not running or shutil.which("udevadm") is None:
            self.actions.append("systemd is not running here (chroot or image build): unit enabled for the next boot; udev rule applies when udev starts")
            return
        self.run("udevadm", "control", "--reload-rules")
        self.run("udevadm", "trigger", "--subsystem-match=usb", "--subsystem-match=apex")

    def write_manifest(self) -> None:
        doc = {
            "version": MANIFEST_VERSION,
            "staging": self.staging,
            "user": {"name": USER, "group": GROUP, "supplementary_groups": [CAMERA_GROUP], "home": "/var/lib/edge-agent", "shell": "/usr/sbin/nologin"},
            "paths": dict(sorted(self.manifest.items())),
        }
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        self.file("/opt/edge-agent/install-manifest.json", data, "root", "root", 0o644)

    def install(self) -> None:
        self.user()
        self.layout()
        self.payload()
        self.configuration()
        self.venv()
        self.write_manifest()
        self.activate()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="install", description="install edge-agent on a Raspberry Pi OS (bookworm) device")
    p.add_argument("--root", type=Path, default=None, help="install into this staging root instead of /")
    p.add_argument("--config-dir", type=Path, default=None, help="directory written by 'provision.py device'")
    p.add_argument("--source-dir", type=Path, default=Path(__file__).resolve().parents[1],
                   help="project checkout or unpacked bundle (default: the one holding this script)")
    p.add_argument("--skip-venv", action="store_true", help="do not create/update /opt/edge-agent/venv")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    staging = args.root is not None and args.root.resolve() != Path("/")
    if not staging and os.geteuid() != 0:
        print("error: installing onto this system needs root\n  hint: run with sudo, or use --root DIR to stage", file=sys.stderr)
        return 2
    root = args.root.resolve() if args.root is not None else Path("/")
    if staging:
        root.mkdir(parents=True, exist_ok=True)
    inst = Installer(root, args.source_dir.resolve(), args.config_dir, staging, args.skip_venv)
    try:
        inst.install()
    except InstallError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"error: command failed ({exc.returncode}): {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return 2
    for line in inst.changes or ["nothing to change: already installed"]:
        print(line)
    for line in inst.actions:
        print(f"note: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
