"""The libraries whose arithmetic is in every score, against the exact versions the package pins.

OpenCV's warp and LiteRT's XNNPACK kernels decide each aligned crop and embedding, and the shipped
calibration, like every threshold a force approves, was measured with the versions pinned in
``pyproject.toml`` (OpenCV 5.1 moved every dev-set score by ~0.005). A device running other versions
still works, so this says so rather than refusing: ``edge-agent config check`` prints it and the
agent logs it at start-up. Reads package metadata only: nothing heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

#: Distributions whose version changes scores (pyproject.toml says why each is pinned).
SCORED = ("opencv-python-headless", "ai-edge-litert")
DISTRIBUTION = "edge_agent"


@dataclass(frozen=True)
class LibraryVersion:
    name: str
    pinned: str | None  # None: no exact pin applies here (a platform marker excludes it, or none is set)
    installed: str | None  # None: not installed (tflite-runtime stands in for ai-edge-litert on armv7l)

    @property
    def differs(self) -> bool:
        return self.pinned is not None and self.installed is not None and self.installed != self.pinned

    def describe(self) -> str:
        return f"{self.name} {self.installed or 'not installed'}" + (f" (pinned {self.pinned})" if self.differs else "")


def exact_pins(requirements: list[str]) -> dict[str, str]:
    """``name==version`` requirements of the runtime install (not extras), by lower-case name."""
    pins = {}
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if "extra ==" in marker:
            continue
        name, exact, version = spec.partition("==")
        if exact and not any(c in version for c in ",<>=!~*"):
            pins[name.strip().lower()] = version.strip()
    return pins


def scored_versions() -> list[LibraryVersion]:
    try:
        pins = exact_pins(metadata.requires(DISTRIBUTION) or [])
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        pins = {}
    found = []
    for name in SCORED:
        try:
            installed: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        found.append(LibraryVersion(name, pins.get(name), installed))
    return found


def installed(versions: list[LibraryVersion]) -> dict[str, str | None]:
    """{distribution: installed version or None}: what an evaluation report and its cache key record."""
    return {v.name: v.installed for v in versions}


def warnings(versions: list[LibraryVersion]) -> list[str]:
    """One sentence per library that differs from its pin: what differs, what it means, what to do."""
    return [
        f"{v.name} {v.installed} is installed where {v.pinned} is pinned: scores can differ from those the deployment's "
        f"threshold was calibrated on; install the project's own bundle or `pip install {v.name}=={v.pinned}`"
        for v in versions
        if v.differs
    ]
