"""What a deployment's alert threshold rests on: a cited calibration report, or the provisional default.

A deployment record (format v2 and v3) carries one of these in its signed ``calibration`` section so an
auditor can link the threshold to evidence (policing.md 9, 17-18). A citation holds the report's
SHA-256 and the figures a reviewer needs without opening it; ``read_calibration_report`` builds it
from the file ``edge-agent calibrate --out`` wrote (docs/formats/calibration.md). Format of the
section: docs/formats/deployment.md.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from edge_agent.crypto.canonical import CanonicalJsonError, loads_strict
from edge_agent.errors import ConfigError
from edge_agent.vision.model_files import sha256_file

PROVISIONAL_BASIS = "provisional_default"
REPORT_BASIS = "calibration_report"
#: The ModelIdentity keys a calibration is bound to (edge_agent.vision.core.ModelIdentity).
MODEL_KEYS = ("detector_sha256", "aligner", "embedder_sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# The calibrated default alert threshold (SFace cosine similarity), the ONE place it lives (policy.py
# compares against it, record.py states it as the provisional basis).
# Why 0.55: on a held-out LFW-style evaluation of this same pipeline (int8 BlazeFace, 4-point
# alignment, int8 SFace; ../shared/requirements/models.md) a 1,000-subject watchlist needed about
# 0.51 for FPIR 0.003, and FPIR grows with watchlist size, so the default sits above that. The
# 204-image dev set cannot resolve a 1-in-6,000 budget (it would need ~23,000 non-mated searches:
# `edge-agent calibrate` says so), so this stays provisional until a force runs `edge-agent
# calibrate` on a large consented test set and replaces it with that output.
CALIBRATED_DEFAULT_THRESHOLD = 0.55


@dataclass(frozen=True)
class ProvisionalDefault:
    """No calibration cited: the threshold rests on the firmware's provisional default.

    ``default_threshold`` records the value when the record was made; a device applies its own
    ``CALIBRATED_DEFAULT_THRESHOLD``."""

    default_threshold: float

    def __post_init__(self) -> None:
        _check_threshold("calibration.default_threshold", self.default_threshold)

    def to_json(self) -> dict[str, Any]:
        return {"basis": PROVISIONAL_BASIS, "default_threshold": float(self.default_threshold)}


@dataclass(frozen=True)
class CalibrationCitation:
    """A calibration report cited by SHA-256, with the figures that decide whether it fits."""

    report_sha256: str
    created_at: str
    tool_version: str
    evaluation_report_sha256: str | None
    evaluation_set_sha256: str | None
    detector_sha256: str
    aligner: str
    embedder_sha256: str
    budget: float  # false alerts per face the calibration held to
    budget_text: str
    watchlist_size: int  # the largest watchlist it is valid for
    evaluated_watchlist_size: int
    threshold: float  # the calibrated threshold: this deployment's calibrated default
    fpir_upper95: float  # upper 95 % Wilson bound of FPIR at ``threshold``
    nonmated_searches: int
    mated_searches: int

    def __post_init__(self) -> None:
        for name in ("report_sha256", "evaluation_report_sha256", "evaluation_set_sha256"):
            value = getattr(self, name)
            if not (value is None and name != "report_sha256") and not (isinstance(value, str) and _SHA256.fullmatch(value)):
                raise ConfigError(f"calibration.{name} {value!r} is not a lower-case hex SHA-256", "cite the report with edge-agent")
        for name in ("created_at", "tool_version", "detector_sha256", "aligner", "embedder_sha256", "budget_text"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"calibration.{name} is missing", "cite the report with edge-agent deployment create --calibration")
        _check_threshold("calibration.threshold", self.threshold)
        for name in ("budget", "fpir_upper95"):
            _check_rate(f"calibration.{name}", getattr(self, name))
        for name in ("watchlist_size", "evaluated_watchlist_size", "nonmated_searches", "mated_searches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"calibration.{name} {value!r} must be a non-negative integer", "cite the report with edge-agent")

    @property
    def model(self) -> dict[str, str]:
        return {"detector_sha256": self.detector_sha256, "aligner": self.aligner, "embedder_sha256": self.embedder_sha256}

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": REPORT_BASIS,
            "report_sha256": self.report_sha256,
            "created_at": self.created_at,
            "tool_version": self.tool_version,
            "evaluation_report_sha256": self.evaluation_report_sha256,
            "evaluation_set_sha256": self.evaluation_set_sha256,
            "model": self.model,
            "budget": float(self.budget),
            "budget_text": self.budget_text,
            "watchlist_size": self.watchlist_size,
            "evaluated_watchlist_size": self.evaluated_watchlist_size,
            "threshold": float(self.threshold),
            "fpir_upper95": float(self.fpir_upper95),
            "nonmated_searches": self.nonmated_searches,
            "mated_searches": self.mated_searches,
        }

    def matches_file(self, path: Path) -> bool:
        """True if the file at ``path`` is byte for byte the report this citation was made from."""
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read calibration report {path}: {exc.strerror}", "check the path") from None
        return hmac.compare_digest(digest, self.report_sha256)


ThresholdEvidence = ProvisionalDefault | CalibrationCitation
CITATION_FIELDS = (
    "basis", "report_sha256", "created_at", "tool_version", "evaluation_report_sha256", "evaluation_set_sha256", "model",
    "budget", "budget_text", "watchlist_size", "evaluated_watchlist_size", "threshold", "fpir_upper95",
    "nonmated_searches", "mated_searches",
)


def evidence_from_json(doc: Any) -> ThresholdEvidence:
    """Parse a record's ``calibration`` section; unknown or missing fields are refused."""
    if not isinstance(doc, dict):
        raise ConfigError("deployment field calibration is not an object", "see docs/formats/deployment.md")
    basis = doc.get("basis")
    if basis == PROVISIONAL_BASIS:
        _exact_fields(doc, ("basis", "default_threshold"))
        return ProvisionalDefault(doc["default_threshold"])
    if basis != REPORT_BASIS:
        raise ConfigError(f"calibration.basis {basis!r} is not {PROVISIONAL_BASIS!r} or {REPORT_BASIS!r}", "see docs/formats/deployment.md")
    _exact_fields(doc, CITATION_FIELDS)
    model = doc["model"]
    if not isinstance(model, dict) or sorted(model) != sorted(MODEL_KEYS):
        raise ConfigError(f"calibration.model must have exactly {', '.join(MODEL_KEYS)}", "see docs/formats/deployment.md")
    values = {k: v for k, v in doc.items() if k not in ("basis", "model")}
    return CalibrationCitation(**values, **model)


def read_calibration_report(path: Path) -> CalibrationCitation:
    """Cite the calibration report at ``path`` (written by ``edge-agent calibrate --out``).

    ``report_sha256`` is the SHA-256 of the file's bytes. A version 2 file must be exactly
    ``jcs(report) + b"\\n"`` (one spelling, so one hash); a version 1 file is hashed as it is."""
    from edge_agent.evaluation.calibrate import CALIBRATION_FORMAT, READABLE_CALIBRATION_VERSIONS, encode_calibration

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read calibration report {path}: {exc.strerror}", "pass the file edge-agent calibrate --out wrote") from None
    try:
        doc = loads_strict(data)
    except CanonicalJsonError as exc:
        raise ConfigError(f"calibration report {path} is not JSON: {exc.message}", "pass the file edge-agent calibrate --out wrote") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT or isinstance(version, bool) or version not in READABLE_CALIBRATION_VERSIONS:
        raise ConfigError(f"{path} is not a calibration report ({CALIBRATION_FORMAT} v{'/v'.join(map(str, READABLE_CALIBRATION_VERSIONS))})",
                          "pass the file edge-agent calibrate --out wrote")
    if version >= 2:
        try:
            canonical = encode_calibration(doc) == data
        except CanonicalJsonError:
            canonical = False
        if not canonical:
            raise ConfigError(f"calibration report {path} is not in its one spelling (RFC 8785 and a final line feed), so its SHA-256 is not the report's",
                              "cite the file exactly as edge-agent calibrate wrote it (not re-indented or re-saved)")
    needed = ("created_at", "tool_version", "evaluation_report_sha256", "evaluation_set_sha256", "model", "budget",
              "watchlist_size", "evaluated_watchlist_size", "recommended_threshold", "fpir_upper95", "nonmated_searches", "mated_searches")
    missing = [k for k in needed if k not in doc]
    if missing:
        raise ConfigError(f"calibration report {path} lacks {', '.join(missing)} (made by an older edge-agent)",
                          "re-run edge-agent calibrate with this version and cite the new report")
    if doc["recommended_threshold"] is None:
        raise ConfigError(f"calibration report {path} recommends no threshold: {doc.get('reason', '')}",
                          "a deployment can only cite a calibration that met its budget; evaluate on a larger set")
    model = doc["model"] if isinstance(doc["model"], dict) else {}
    budget = doc["budget"] if isinstance(doc["budget"], dict) else {}
    try:
        return CalibrationCitation(
            report_sha256=hashlib.sha256(data).hexdigest(),
            created_at=doc["created_at"],
            tool_version=doc["tool_version"],
            evaluation_report_sha256=doc["evaluation_report_sha256"],
            evaluation_set_sha256=doc["evaluation_set_sha256"],
            detector_sha256=model.get("detector_sha256", ""),
            aligner=model.get("aligner", ""),
            embedder_sha256=model.get("embedder_sha256", ""),
            budget=cast(float, budget.get("false_alerts_per_face")),  # checked by CalibrationCitation
            budget_text=budget.get("text", ""),
            watchlist_size=doc["watchlist_size"],
            evaluated_watchlist_size=doc["evaluated_watchlist_size"],
            threshold=doc["recommended_threshold"],
            fpir_upper95=doc["fpir_upper95"],
            nonmated_searches=doc["nonmated_searches"],
            mated_searches=doc["mated_searches"],
        )
    except ConfigError as exc:
        raise ConfigError(f"calibration report {path}: {exc.message}", exc.hint) from None


def _exact_fields(doc: dict[str, Any], fields: tuple[str, ...]) -> None:
    missing = [f for f in fields if f not in doc]
    unknown = sorted(set(doc) - set(fields))
    if missing or unknown:
        raise ConfigError(f"deployment calibration section: missing {', '.join(missing) or 'nothing'}, unknown {', '.join(unknown) or 'nothing'}",
                          "see docs/formats/deployment.md")


def _check_threshold(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ConfigError(f"{name} {value!r} must be a number between 0 and 1", "cite the report with edge-agent")


def _check_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} {value!r} must be a rate between 0 and 1", "cite the report with edge-agent")
