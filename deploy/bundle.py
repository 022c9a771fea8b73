#!/usr/bin/env python3
"""Build one offline-installable artefact for devices without network. Standard library + pip.

  python deploy/bundle.py --out dist/                      # full bundle (downloads aarch64 wheels)
  python deploy/bundle.py --out dist/ --skip-download      # no dependency wheels (CI, or add them later)

The tarball unpacks to ``edge-agent-<version>/`` with the same layout as the checkout, so the
installer inside it works unchanged::

  tar xzf edge-agent-0.1.0-aarch64.tar.gz && cd edge-agent-0.1.0 && sudo python3 deploy/install.py --config-dir ...

Contents: ``wheels/`` (the project wheel plus, unless --skip-download, every dependency as a
manylinux aarch64 wheel for CPython 3.11, the Python of Raspberry Pi OS bookworm), ``models/``,
``systemd/``, ``deploy/install.py``, ``deploy/udev/``, ``deploy/templates/``, ``hw/`` and
``BUNDLE.json`` (version, sha256 of every file, whether dependencies are included). picamera2
is not bundled: on Raspberry Pi OS it comes from apt (python3-picamera2) with libcamera.

The archive is reproducible: sorted members, fixed mtime (SOURCE_DATE_EPOCH or 0), root owner,
normalised modes, so the same inputs give the same sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE_VERSION = 1
PYTHON_VERSION = "3.11"
# Raspberry Pi OS bookworm has glibc 2.36. pip matches --platform tags literally (it does not
# widen manylinux_2_34 to the older glibc levels), so every level a wheel may be tagged with is
# listed: ai-edge-litert 2.x ships only manylinux_2_27_aarch64 and was missed by a shorter list.
TARGET_GLIBC_MINOR = 36
PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, TARGET_GLIBC_MINOR + 1)))
# (source relative to the checkout, glob) copied into the bundle under the same relative path
PAYLOAD = (
    ("systemd", "edge-agent.service"),
    ("deploy", "install.py"),
    ("deploy/udev", "*.rules"),
    ("deploy/templates", "*.toml"),
    ("deploy/mosquitto", "*"),
    ("hw", "README.md"),
    ("hw/profiles", "*.toml"),
    ("models", "*.tflite"),
    ("models", "manifest.toml"),
    ("docs/formats", "config.md"),
)


class BundleError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def build_project_wheel(dest: Path, source: Path = REPO) -> Path:
    """``pip wheel --no-deps`` of the checkout (pure Python, so one wheel serves every platform).

    Built from a clean copy of pyproject.toml, README.md and edge_agent/ so that the build
    neither picks up stray files nor leaves build/ and *.egg-info in the checkout.
    """
    with tempfile.TemporaryDirectory(prefix="edge-agent-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(source / name, src / name)
        shutil.copytree(source / "edge_agent", src / "edge_agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest), str(src)]
        if _local_backend_can_build_wheels():
            cmd.insert(4, "--no-build-isolation")  # offline and fast: no build requirements fetched
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wheels = sorted(dest.glob("edge_agent-*.whl"))
    if result.returncode != 0 or not wheels:
        raise BundleError(f"building the project wheel failed: {result.stderr.strip()[-800:]}", "build it yourself and pass --wheel PATH")
    return wheels[-1]


def pip_target_args() -> list[str]:
    """The ``pip download`` options that select wheels for the device (CPython 3.11, aarch64)."""
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def download_wheels(requirements: list[str], dest: Path) -> list[Path]:
    """``requirements`` and everything they need as aarch64 CPython 3.11 binary wheels (needs network)."""
    cmd = [sys.executable, "-m", "pip", "download", *pip_target_args(), "--dest", str(dest), *requirements]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise BundleError(f"downloading aarch64 wheels failed: {result.stderr.strip()[-800:]}",
                          "check network access to the package index, or build with --skip-download")
    return sorted(dest.glob("*.whl"))


# The device's values of the PEP 508 marker variables. pip download --platform selects wheels for
# the target but still evaluates markers on the build machine, so an x86-only requirement
# (atheris, in the dev extra) would be looked for as an aarch64 wheel and the download fail.
TARGET_MARKER_ENVIRONMENT = {
    "platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
    "python_version": PYTHON_VERSION, "python_full_version": f"{PYTHON_VERSION}.2",
}


def target_requirements(project_wheel: Path, extra: str) -> list[str]:
    """The project wheel's requirements with ``extra`` as the device resolves them: each marker
    evaluated for aarch64 Linux, CPython 3.11, and the marker dropped (pip would re-evaluate it here)."""
    import zipfile
    from email.parser import Parser

    from packaging.requirements import Requirement  # pytest's dependency: present wherever test wheels are built

    with zipfile.ZipFile(project_wheel) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []
    chosen = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({**TARGET_MARKER_ENVIRONMENT, "extra": extra}):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def download_dependencies(project_wheel: Path, dest: Path) -> list[Path]:
    """Every runtime dependency of the agent as an aarch64 wheel (run on a workstation with network)."""
    return [p for p in download_wheels([str(project_wheel)], dest) if p.name != project_wheel.name]


def _local_backend_can_build_wheels() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones (>= 61, for [project]) need ``wheel``."""
    try:
        import setuptools
    except ImportError:
        return False
    try:
        version = tuple(int(part) for part in setuptools.__version__.split(".")[:2])
    except ValueError:
        return False
    if version >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return version >= (68, 0)


def _copy_payload(source: Path, stage: Path) -> None:
    for rel, pattern in PAYLOAD:
        for path in sorted((source / rel).glob(pattern)):
            if path.is_file():
                target = stage / rel / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    if not (stage / "systemd" / "edge-agent.service").is_file() or not (stage / "deploy" / "install.py").is_file():
        raise BundleError(f"{source} is not an edge-agent checkout (systemd/ or deploy/install.py missing)", "run from the repository")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reproducible_tar(stage: Path, top: str, out: Path, mtime: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = [stage, *sorted(stage.rglob("*"))]
        for path in paths:
            rel = path.relative_to(stage).as_posix()
            name = top if rel == "." else f"{top}/{rel}"
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            info.pax_headers = {}
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o755 if (path.suffix == ".py" and path.parent.name == "deploy") else 0o644
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=6) as gz:
        gz.write(buf.getvalue())


def build_bundle(out_dir: Path, *, wheel: Path | None = None, skip_download: bool = False, source: Path = REPO,
                 mtime: int | None = None, test_wheels: Path | None = None) -> Path:
    """Build the bundle tarball in ``out_dir`` and return its path. ``test_wheels``: also download the
    aarch64 wheels of the ``dev`` extra (pytest, the reference models) there, outside the bundle,
    so the test suite can run on an arm64 root (deploy/check-arm64.sh); devices never get them."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) if mtime is None else mtime
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-agent-bundle-") as tmp:
        tmpdir = Path(tmp)
        wheels = tmpdir / "stage" / "wheels"
        wheels.mkdir(parents=True)
        if wheel is not None:
            if not wheel.is_file() or not wheel.name.startswith("edge_agent-") or wheel.suffix != ".whl":
                raise BundleError(f"{wheel} is not an edge_agent wheel", "pass the file built by: pip wheel --no-deps .")
            project = wheels / wheel.name
            shutil.copy2(wheel, project)
        else:
            project = build_project_wheel(wheels, source)
        version = project.name.split("-")[1]
        deps = [] if skip_download else download_dependencies(project, wheels)
        if test_wheels is not None:
            test_wheels.mkdir(parents=True, exist_ok=True)
            download_wheels([str(project), *target_requirements(project, "dev")], test_wheels)
        stage = tmpdir / "stage"
        _copy_payload(source, stage)
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        manifest = {
            "bundle_version": BUNDLE_VERSION,
            "package_version": version,
            "target": {"python": PYTHON_VERSION, "platforms": list(PLATFORMS), "os": "Raspberry Pi OS (Debian 12 bookworm) arm64"},
            "dependencies_included": not skip_download,
            "dependency_wheels": [p.name for p in deps],
            "complete_with": None if not skip_download else (
                f"python -m pip download {' '.join(pip_target_args())} --dest wheels wheels/{project.name}"
            ),
            "files": {p.relative_to(stage).as_posix(): _sha256(p) for p in files},
        }
        (stage / "BUNDLE.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        suffix = "aarch64" if not skip_download else "nodeps"
        top = f"edge-agent-{version}"
        out = out_dir / f"{top}-{suffix}.tar.gz"
        _reproducible_tar(stage, top, out, mtime)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bundle", description="build an offline-installable edge-agent bundle")
    p.add_argument("--out", type=Path, default=REPO / "dist")
    p.add_argument("--wheel", type=Path, default=None, help="use this project wheel instead of building one")
    p.add_argument("--skip-download", action="store_true", help="do not download aarch64 dependency wheels")
    p.add_argument("--test-wheels", type=Path, default=None, metavar="DIR",
                   help="also download the aarch64 wheels the test suite needs into DIR (not into the bundle)")
    args = p.parse_args(argv)
    try:
        out = build_bundle(args.out, wheel=args.wheel, skip_download=args.skip_download, test_wheels=args.test_wheels)
    except BundleError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    print(f"{out} ({out.stat().st_size // 1024} KiB, sha256 {_sha256(out)})")
    if args.skip_download:
        print("note: dependency wheels not included; see complete_with in BUNDLE.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
