"""Times each model family's int8 and float variants on this device (``edge-agent models measure``).

The variants are invoked in turn (A, B, A, B...) so a burst of other work on a shared core slows
both alike, and their medians are compared (model_timings.decide). The input is random values of
each tensor's shape: a convolution costs the same whatever the pixels, so no face is needed or
kept. Each timed call is the agent's own (``LiteRTModel.run``: quantize, invoke, dequantize, clear).

The unit runs this inside its start timeout (``TimeoutStartSec``), so the timing stops at a time
budget once ``MIN_ROUNDS`` rounds are in: a Pi Zero 2 W takes fewer rounds, never a failed start.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.vision.cpu_profile import CpuProfile, read_cpu_profile
from edge_agent.vision.model_choice import ModelFamily, preferred_precision
from edge_agent.vision.model_files import ModelManifest, default_models_dir
from edge_agent.vision.model_timings import DEFAULT_BUDGET_S, MIN_ROUNDS, FamilyTiming, MeasuredOn, ModelTimings, VariantTiming, decide
from edge_agent.vision.runtime import LiteRTModel


def measure(
    families: Sequence[ModelFamily],
    threads: int,
    models_dir: Path | None = None,
    rounds: int = 30,
    warmup: int = 3,
    profile: CpuProfile | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
) -> ModelTimings:
    """Timings of every variant of each family with more than one, and the choice they make.

    Each family may spend its share of ``budget_s`` (model loading included); past it, a family
    stops after ``MIN_ROUNDS`` timed rounds (or fewer asked) rather than the ``rounds`` asked."""
    profile = profile or read_cpu_profile()
    manifest = ModelManifest(models_dir or default_models_dir())
    rng = np.random.default_rng(0)
    timed = []
    choosable = [f for f in families if len(f.variants) > 1]
    share = budget_s / max(len(choosable), 1)
    for family in choosable:
        began = time.perf_counter()
        files = {precision: manifest.resolve(entry) for precision, entry in family.variants.items()}
        models = {precision: LiteRTModel(f.path, threads) for precision, f in files.items()}
        inputs = {p: [rng.uniform(-1.0, 1.0, s.shape).astype(np.float32) for s in m.inputs] for p, m in models.items()}
        samples: dict[str, list[float]] = {p: [] for p in models}
        for round_ in range(warmup + rounds):
            for precision, model in models.items():
                start = time.perf_counter()
                model.run(*inputs[precision])
                if round_ >= warmup:
                    samples[precision].append((time.perf_counter() - start) * 1000.0)
            if round_ + 1 >= warmup + min(rounds, MIN_ROUNDS) and time.perf_counter() - began > share:
                break
        median = {p: statistics.median(s) for p, s in samples.items()}
        profile_choice = preferred_precision(family, profile)
        variants = tuple(
            VariantTiming(p, family.variants[p], files[p].sha256, round(median[p], 4), len(samples[p])) for p in family.variants
        )
        timed.append(FamilyTiming(family.name, variants, decide(family, median, profile_choice), profile_choice))
    measured_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return ModelTimings(measured_at, MeasuredOn.here(profile, threads), tuple(timed))
