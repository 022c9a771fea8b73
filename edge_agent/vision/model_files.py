"""Finds the shipped models and checks each against ``models/manifest.toml`` before it is used,
so a device never runs (or binds a watchlist to) a model other than the one it was built for."""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import ModelError

MODELS_ENV = "EDGE_AGENT_MODELS"


def default_models_dir() -> Path:
    """$EDGE_AGENT_MODELS, else the checkout's models/ (editable install); devices name theirs in the
    config (detector.models_dir: deploy/install.py puts them in /opt/edge-agent/models)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    checkout = Path(__file__).resolve().parents[2] / "models"
    if (checkout / "manifest.toml").is_file():
        return checkout
    raise ModelError(
        "cannot find the models directory (no manifest.toml)",
        f"set {MODELS_ENV} to the folder holding the .tflite files and manifest.toml",
    )


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    sha256: str
    role: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelManifest:
    """The manifest's entries by name; ``resolve`` verifies the file hash on first use."""

    def __init__(self, models_dir: Path) -> None:
        self.dir = Path(models_dir)
        manifest = self.dir / "manifest.toml"
        try:
            data = tomllib.loads(manifest.read_text())
        except FileNotFoundError:
            raise ModelError(f"{manifest} not found", "reinstall the models or set " + MODELS_ENV) from None
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(f"{manifest} is not valid TOML: {exc}", "restore it from the release") from None
        self.entries: dict[str, dict] = data.get("models", {})

    def recorded_sha256(self, name: str) -> str:
        """The hash the manifest records for ``name`` (names a model family; the file is not read)."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelError(f"model {name!r} is not in the manifest", "rebuild the models (models/README.md)")
        return str(entry["sha256"])

    def resolve(self, name: str) -> ModelFile:
        entry = self.entries.get(name)
        if entry is None:
            raise ModelError(f"model {name!r} is not in the manifest", "rebuild the models (models/README.md)")
        path = self.dir / entry["file"]
        if not path.is_file():
            raise ModelError(f"model file {path} is missing", "reinstall the models")
        actual = sha256_file(path)
        if not hmac.compare_digest(actual, entry["sha256"]):
            raise ModelError(
                f"model file {path.name} does not match the manifest (sha256 {actual[:12]}..., expected {entry['sha256'][:12]}...)",
                "the file was altered or replaced: reinstall it from the release",
            )
        return ModelFile(name, path, actual, entry.get("role", ""))
