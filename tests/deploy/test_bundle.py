"""deploy/bundle.py offline: the real project wheel, a reproducible tarball, and the installer run from it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))
import bundle  # noqa: E402  (deploy/ is a scripts folder, not a package)


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    try:
        return bundle.build_project_wheel(out)
    except bundle.BundleError as exc:
        pytest.skip(f"pip cannot build the project wheel here (needs setuptools>=68 and wheel): {exc.message}")


def test_bundle_is_complete_reproducible_and_installs(tmp_path, project_wheel):
    a = bundle.build_bundle(tmp_path / "a", wheel=project_wheel, skip_download=True)
    b = bundle.build_bundle(tmp_path / "b", wheel=project_wheel, skip_download=True)
    assert a.name == "edge-agent-0.1.0-nodeps.tar.gz"
    assert a.read_bytes() == b.read_bytes(), "same inputs, same bytes"

    with tarfile.open(a) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = "edge-agent-0.1.0"
        for rel in ("BUNDLE.json", f"wheels/{project_wheel.name}", "systemd/edge-agent.service", "deploy/install.py",
                    "deploy/udev/71-edge-agent-coral.rules", "deploy/templates/agent.toml", "hw/profiles/pi5.toml",
                    "deploy/mosquitto/edge-agent.acl"):
            assert f"{top}/{rel}" in members, rel
        for model in (REPO / "models").glob("*.tflite"):
            assert f"{top}/models/{model.name}" in members
        assert all(m.uid == 0 and m.mtime == 0 for m in members.values())
        assert members[f"{top}/deploy/install.py"].mode == 0o755
        manifest = json.load(tar.extractfile(f"{top}/BUNDLE.json"))
        assert manifest["dependencies_included"] is False
        assert "--platform manylinux2014_aarch64" in manifest["complete_with"]
        assert "--python-version 3.11" in manifest["complete_with"]
        for rel, digest in manifest["files"].items():
            assert hashlib.sha256(tar.extractfile(f"{top}/{rel}").read()).hexdigest() == digest, rel
        tar.extractall(tmp_path / "unpacked", filter="data")

    unpacked = tmp_path / "unpacked" / top
    root = tmp_path / "root"
    result = subprocess.run([sys.executable, str(unpacked / "deploy" / "install.py"), "--root", str(root)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (root / "etc/systemd/system/edge-agent.service").read_bytes() == (REPO / "systemd/edge-agent.service").read_bytes()
    assert (root / "opt/edge-agent/hw/profiles/pi-zero-2w.toml").is_file()


def test_bundle_rejects_a_wrong_wheel(tmp_path):
    bogus = tmp_path / "other-1.0-py3-none-any.whl"
    bogus.write_bytes(b"PK")
    with pytest.raises(bundle.BundleError, match="is not an edge_agent wheel"):
        bundle.build_bundle(tmp_path / "out", wheel=bogus, skip_download=True)
