"""The device's own timings of each model's int8 and float variants, and the choice they make.

Why measured: the CPU profile's rule (int8 where the CPU has an int8 dot product) is right on
average and wrong on some machines. On three 2-core VMs reporting the same AVX-512 VNNI flags the
int8 full-range BlazeFace was 1.3x slower, 1.3x faster and 1.5x faster than the float one
(models/README.md, "Speed"). So ``edge-agent models measure`` times both variants on the device
and ``precision = "auto"`` follows that record while it still describes the device: the same CPU,
the same model files, the same runtime and the same thread count. Otherwise the profile decides
and the agent says why. Format: docs/formats/model-timings.md.

No heavy imports: reading the record needs no interpreter (measuring does: model_measure.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_agent.durable import atomic_write
from edge_agent.errors import ModelError
from edge_agent.vision.cpu_profile import CpuProfile
from edge_agent.vision.model_choice import ModelFamily

FORMAT = "edge-agent-model-timings"
VERSION = 1
FILENAME = "model-timings.json"
#: A variant must be at least this much faster (median) to displace the profile's choice: below
#: it the two are within the noise of a busy device, and the profile's pick stands.
MIN_GAIN = 0.05
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
# The unit measures inside its 60 s start timeout: each family stops at its share of the budget
# once MIN_ROUNDS timed rounds are in (vision/model_measure.py).
MIN_ROUNDS = 5
DEFAULT_BUDGET_S = 20.0
MEASURE_HINT = "run `edge-agent models measure --config /etc/edge-agent/agent.toml` on the device"


@dataclass(frozen=True)
class MeasuredOn:
    """What the timings describe; any difference from the running device makes them stale."""

    machine: str
    cpu_model: str
    cpu_features_sha256: str  # sha256 of the sorted CPU feature flags, space-joined
    cores: int
    runtime: str  # "ai-edge-litert 2.3.0"
    threads: int

    @classmethod
    def here(cls, profile: CpuProfile, threads: int) -> "MeasuredOn":
        features = hashlib.sha256(" ".join(sorted(profile.features)).encode()).hexdigest()
        return cls(profile.machine, profile.model, features, profile.cores, runtime_version(), threads)


@dataclass(frozen=True)
class VariantTiming:
    precision: str  # int8 | float32
    model: str  # manifest entry
    sha256: str  # of the file timed
    median_ms: float  # median wall time of one invoke
    invokes: int


@dataclass(frozen=True)
class FamilyTiming:
    family: str  # ModelFamily.name
    variants: tuple[VariantTiming, ...]
    chosen: str  # the precision auto runs
    profile_choice: str  # what the CPU profile's rule would have run (kept where the gain is small)


@dataclass(frozen=True)
class ModelTimings:
    measured_at: str  # ISO 8601 UTC
    device: MeasuredOn
    families: tuple[FamilyTiming, ...]

    def chosen(self, family: str) -> str | None:
        return next((f.chosen for f in self.families if f.family == family), None)

    def stale_reason(self, here: MeasuredOn, sha256_of: Callable[[str], str]) -> str | None:
        """Why these timings no longer describe this device (None: they do). ``sha256_of``
        gives the manifest's hash of a model entry."""
        differing = [name for name in ("machine", "cpu_model", "cpu_features_sha256", "cores", "runtime", "threads")
                     if getattr(self.device, name) != getattr(here, name)]
        if differing:
            field = differing[0]
            return f"they were measured with {field} {getattr(self.device, field)!r}, this device has {getattr(here, field)!r}"
        for family in self.families:
            for variant in family.variants:
                try:
                    current = sha256_of(variant.model)
                except ModelError:
                    return f"model {variant.model!r} is no longer in the manifest"
                if current != variant.sha256:
                    return f"model {variant.model!r} has changed since they were measured"
        return None

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "version": VERSION,
            "measured_at": self.measured_at,
            "device": vars(self.device),
            "families": [
                {"family": f.family, "chosen": f.chosen, "profile_choice": f.profile_choice, "variants": [vars(v) for v in f.variants]}
                for f in self.families
            ],
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, source: Path) -> "ModelTimings":
        def bad(what: str) -> ModelError:
            return ModelError(f"{source} is not a model-timings record: {what}", f"delete it and {MEASURE_HINT}")

        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"not JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise bad(f"format is not {FORMAT!r}")
        if body.get("version") != VERSION:
            raise bad(f"version {body.get('version')!r} is not {VERSION} (written by another release)")
        try:
            device = MeasuredOn(**_typed(body["device"], MeasuredOn))
            families = tuple(
                FamilyTiming(str(f["family"]), tuple(VariantTiming(**_typed(v, VariantTiming)) for v in f["variants"]),
                             str(f["chosen"]), str(f["profile_choice"]))
                for f in body["families"]
            )
            measured_at = str(body["measured_at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"a field is missing or of the wrong type ({exc})") from None
        for family in families:
            precisions = {v.precision for v in family.variants}
            if family.chosen not in precisions:
                raise bad(f"family {family.family!r} chose {family.chosen!r}, which it did not time")
        return cls(measured_at, device, families)


def _typed(raw: Any, kind: type) -> dict[str, Any]:
    """``raw``'s fields for dataclass ``kind``, each checked against its annotation (str, int or float)."""
    if not isinstance(raw, dict):
        raise TypeError(f"{kind.__name__} is not an object")
    types: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "float": (int, float)}
    out = {}
    for name, annotation in kind.__annotations__.items():
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, types[annotation]):
            raise TypeError(f"{kind.__name__}.{name} is not {annotation}")
        out[name] = float(value) if isinstance(value, int) and annotation == "float" else value
    return out


def decide(family: ModelFamily, median_ms: dict[str, float], profile_choice: str) -> str:
    """The faster variant, if it beats the profile's choice by ``MIN_GAIN``; else the profile's."""
    fastest = min(median_ms, key=lambda p: median_ms[p])
    if fastest != profile_choice and median_ms[fastest] < median_ms[profile_choice] * (1 - MIN_GAIN):
        return fastest
    return profile_choice if profile_choice in median_ms else fastest


def runtime_version() -> str:
    for name in RUNTIMES:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "no LiteRT runtime installed"


def path_in(state_dir: Path) -> Path:
    """Where a device keeps its timings: its state directory, the only one the agent writes."""
    return Path(state_dir) / FILENAME


def load(path: Path) -> ModelTimings | None:
    """The record at ``path``; None where there is none yet. A malformed one is an error naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a model-timings record", f"remove it and {MEASURE_HINT}") from None
    return ModelTimings.from_json(data, path)


def for_device(state_dir: Path) -> tuple[ModelTimings | None, str | None]:
    """(the device's timings or None, what was wrong with a damaged record): a damaged record is
    set aside, not fatal, since it only ever chooses between two variants the manifest vouches for."""
    try:
        return load(path_in(state_dir)), None
    except ModelError as exc:
        return None, f"{exc.message}; precision 'auto' follows the CPU profile until then ({exc.hint})"


def save(path: Path, timings: ModelTimings) -> None:
    """Written whole or not at all, 0600 like the rest of the agent's state."""
    atomic_write(path, timings.to_json())
