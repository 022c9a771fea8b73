"""Which variant (int8 or float32) of each model a device runs, and which model *family* it belongs to.

Why per CPU: XNNPACK's int8 kernels beat its float ones only where the CPU has an int8 dot-product
instruction (x86 VNNI, ARM ``asimddp``: Pi 5 yes, Pi 4 and Zero 2 W no); elsewhere int8 costs
accuracy for no speed. And per model: on an AVX-512 VNNI x86 machine the int8 SFace is 2x faster
than its float-activation sibling while the int8 full-range BlazeFace is *slower* than the float one
(models/README.md), so each family has its own rule.

Why families: a watchlist's templates are bound to the models that made them. Both variants of a
family are quantisations of one network (embeddings within cosine ~0.99 of each other, far closer
than two different people), so a watchlist built with either is usable with either; the binding
names the family, by the sha256 of its *reference* member (the file the binding named before
variants existed, so existing watchlists and calibrations keep their bytes). The variant actually
run is reported separately as ``precision`` (alerts' model identity, telemetry).

No heavy imports: config checking and the watchlist build resolve this without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.errors import EdgeAgentError
from edge_agent.vision.cpu_profile import CpuProfile

PRECISIONS = ("int8", "float32")
PRECISION_CHOICES = ("auto", *PRECISIONS)


@dataclass(frozen=True)
class ModelFamily:
    name: str
    reference: str  # manifest entry whose sha256 names the family in bindings
    variants: dict[str, str]  # precision -> manifest entry
    # Machines (platform.machine()) whose int8 kernels were measured slower than float for this
    # family even with a dot-product instruction; there "auto" keeps float32.
    int8_slower_on: frozenset[str] = frozenset()


FAMILIES = {
    "detector_full": ModelFamily(
        "blazeface-full-range",
        "blazeface_full_range_int8",
        {"int8": "blazeface_full_range_int8", "float32": "blazeface_full_range_float"},
        # models/README.md: 2.4-2.6 ms int8 vs 1.9-2.2 ms float on AVX-512 VNNI, 1 and 2 threads.
        int8_slower_on=frozenset({"x86_64", "AMD64"}),
    ),
    "detector_short": ModelFamily("blazeface-short-range", "blazeface_short_range", {"float32": "blazeface_short_range"}),
    "embedder": ModelFamily("sface-2021dec", "sface_int8", {"int8": "sface_int8", "float32": "sface_int8w"}),
}
DETECTOR_FAMILIES = {"full": "detector_full", "short": "detector_short"}


def check_precision(value: str) -> str:
    if value not in PRECISION_CHOICES:
        raise EdgeAgentError(f"unknown model precision {value!r}", f"choose one of {', '.join(PRECISION_CHOICES)}")
    return value


def preferred_precision(family: ModelFamily, profile: CpuProfile) -> str:
    """The profile rule, where the device has not timed its variants: int8 only where the CPU has
    an int8 dot product and int8 was not measured slower for this family on this kind of machine;
    float32 otherwise."""
    if profile.int8_dot_product and profile.machine not in family.int8_slower_on and "int8" in family.variants:
        return "int8"
    return "float32" if "float32" in family.variants else next(iter(family.variants))


def choose_variant(family: ModelFamily, requested: str, profile: CpuProfile | None, measured: str | None = None) -> tuple[str, str]:
    """(precision, manifest entry) for ``requested`` (auto|int8|float32). ``auto`` follows
    ``measured`` (the device's own timings chose it, model_timings.py) where given, else the
    profile. A family without the requested variant runs the one it has (short range is float only)."""
    check_precision(requested)
    if requested == "auto" and measured in family.variants:
        requested = measured
    elif requested == "auto":
        if profile is None:
            raise ValueError("precision 'auto' needs the CPU profile")
        requested = preferred_precision(family, profile)
    precision = requested if requested in family.variants else next(iter(family.variants))
    return precision, family.variants[precision]


def precision_label(detector: str, embedder: str) -> str:
    """One token for events and telemetry (event v2 ``model.precision``: ``[a-z0-9_.+-]{1,32}``):
    the same word when every model runs at one precision, else ``det.<p>+emb.<p>``."""
    return detector if detector == embedder else f"det.{detector}+emb.{embedder}"
