"""deploy/bundle.py offline: the real project wheel, a reproducible tarball, and the installer run from it."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))
import bundle  # noqa: E402  (deploy/ is a folder of scripts, not a package)


def documented_fields(doc: Path) -> set[str]:
    """Field names from the first field table of a format doc."""
    import re

    text = doc.read_text()
    table = text[text.index("| field |"):].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", table, flags=re.MULTILINE))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory) -> Path:
    """A PEP 427 wheel of the checkout's edge_agent package, assembled offline.

    Building through pip needs the build requirements (setuptools>=68, wheel) from an index;
    test_build_project_wheel_offline covers that path where it can run without network.
    """
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = meta["version"]
    dist_info = f"edge_agent-{version}.dist-info"
    out = tmp_path_factory.mktemp("wheel") / f"edge_agent-{version}-py3-none-any.whl"
    files: dict[str, bytes] = {
        p.relative_to(REPO).as_posix(): p.read_bytes()
        for p in sorted((REPO / "edge_agent").rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    requires = "".join(f"Requires-Dist: {d}\n" for d in meta["dependencies"])
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: edge_agent\nVersion: {version}\n{requires}".encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nedge-agent = edge_agent.cli.main:main\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def test_build_project_wheel_offline(tmp_path):
    if not bundle._local_backend_can_build_wheels():
        pytest.skip("an offline wheel build needs setuptools>=70.1 (or >=68 with the wheel package) in this venv")
    wheel = bundle.build_project_wheel(tmp_path)
    assert wheel.name.startswith("edge_agent-") and wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert "edge_agent/capture/frame.py" in zf.namelist()


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
                    "deploy/mosquitto/edge-agent.conf"):
            assert f"{top}/{rel}" in members, rel
        for model in (REPO / "models").glob("*.tflite"):
            assert f"{top}/models/{model.name}" in members
        assert all(m.uid == 0 and m.mtime == 0 for m in members.values())
        assert members[f"{top}/deploy/install.py"].mode == 0o755
        manifest = json.load(tar.extractfile(f"{top}/BUNDLE.json"))
        assert set(manifest) == documented_fields(REPO / "docs/formats/bundle.md"), "BUNDLE.json matches its doc"
        assert manifest["bundle_version"] == 1
        assert manifest["dependencies_included"] is False
        assert "--platform manylinux2014_aarch64" in manifest["complete_with"]
        assert "--python-version 3.11" in manifest["complete_with"]
        for rel, digest in manifest["files"].items():
            assert hashlib.sha256(tar.extractfile(f"{top}/{rel}").read()).hexdigest() == digest, rel
        tar.extractall(tmp_path / "unpacked", filter="data")

    unpacked = tmp_path / "unpacked" / top
    root = tmp_path / "root"
    result = subprocess.run([sys.executable, str(unpacked / "deploy" / "install.py"), "--root", str(root)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (root / "etc/systemd/system/edge-agent.service").read_bytes() == (REPO / "systemd/edge-agent.service").read_bytes()
    assert (root / "opt/edge-agent/hw/profiles/pi-zero-2w.toml").is_file()


def _dist_name(wheel_name: str) -> str:
    return wheel_name.split("-")[0].lower().replace("_", "-")


def test_full_bundle_holds_an_aarch64_wheel_for_every_dependency(tmp_path, project_wheel):
    """The bundle a device installs offline: every runtime requirement as a wheel for CPython 3.11
    on aarch64 glibc <= 2.36 (bookworm), and pip can resolve the agent from it with no index."""
    out = bundle.build_bundle(tmp_path / "out", wheel=project_wheel)
    assert out.name == "edge-agent-0.1.0-aarch64.tar.gz"
    with tarfile.open(out) as tar:
        top = "edge-agent-0.1.0"
        manifest = json.load(tar.extractfile(f"{top}/BUNDLE.json"))
        tar.extractall(tmp_path / "unpacked", filter="data")
    wheels = tmp_path / "unpacked" / top / "wheels"
    assert manifest["dependencies_included"] is True and manifest["complete_with"] is None
    names = {_dist_name(w) for w in manifest["dependency_wheels"]}
    required = {req.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
                for req in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert required <= names, f"missing wheels: {sorted(required - names)}"
    for name in manifest["dependency_wheels"]:
        tags = name[:-4].split("-")[-1].split(".")
        assert any(t.endswith("_aarch64") or t == "any" for t in tags), f"{name} is not an aarch64 wheel"
        if _dist_name(name) == "ai-edge-litert":
            assert "manylinux_2_27_aarch64" in tags, "the runtime's only aarch64 tag must be among the platforms"
    resolve = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(wheels),
         "--target", str(tmp_path / "target"), *bundle.pip_target_args(), "edge_agent"],
        check=False, capture_output=True, text=True, timeout=120)
    assert resolve.returncode == 0, resolve.stderr[-2000:]


def test_platform_tags_cover_every_glibc_of_the_target():
    assert "manylinux2014_aarch64" in bundle.PLATFORMS
    assert {f"manylinux_2_{m}_aarch64" for m in range(17, 37)} <= set(bundle.PLATFORMS)
    assert not any("2_37" in p or "x86" in p for p in bundle.PLATFORMS), "nothing newer than bookworm's glibc 2.36"


def test_bundle_rejects_a_wrong_wheel(tmp_path):
    bogus = tmp_path / "other-1.0-py3-none-any.whl"
    bogus.write_bytes(b"PK")
    with pytest.raises(bundle.BundleError, match="is not an edge_agent wheel"):
        bundle.build_bundle(tmp_path / "out", wheel=bogus, skip_download=True)


def test_test_requirements_are_resolved_for_the_device_not_the_build_machine(tmp_path):
    """pip download --platform evaluates markers on the build machine: the x86-only fuzzer in the dev
    extra was looked for as an aarch64 wheel and check-arm64.sh failed. Markers are the device's."""
    wheel = tmp_path / "edge_agent-0.1.0-py3-none-any.whl"
    requires = [
        "numpy>=1.26", 'pytest>=8; extra == "dev"', "onnx>=1.16 ; extra == 'dev'",
        "atheris>=2.3; (platform_machine == 'x86_64' and sys_platform == 'linux') and extra == 'dev'",
        "armonly>=1; platform_machine == 'aarch64' and extra == 'dev'", 'docsonly; extra == "docs"',
        "tomli>=2; python_version < '3.11'",
    ]
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("edge_agent-0.1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: edge_agent\nVersion: 0.1.0\n"
                    + "".join(f"Requires-Dist: {r}\n" for r in requires))
    assert bundle.target_requirements(wheel, "dev") == ["numpy>=1.26", "pytest>=8", "onnx>=1.16", "armonly>=1"]
