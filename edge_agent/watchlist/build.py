"""Central watchlist build: subjects.csv + reference photos -> templates -> a signed package.

Runs at the authority, never on a device. Writes two things: the package (format v2: templates,
references and categories only) and the signed central build record with each subject's full
listing (issue 10.6). Every lawful-listing rule that can be checked from the
inputs is checked here (policing.md 4-7): closed categories, opaque references, under-18
justification (an error), size cap (an error), and warnings for old, low-quality, faceless or
multi-face reference images, which are skipped rather than guessed at.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import ConfigError, ImageError
from edge_agent.watchlist.build_record import make_build_record, sign_build_record
from edge_agent.watchlist.entry import WatchlistEntry
from edge_agent.watchlist.errors import WatchlistBuildError
from edge_agent.watchlist.package import pack_watchlist

if TYPE_CHECKING:  # loaded by the caller; the build module itself stays free of the models
    from edge_agent.vision.core import RecognitionCore

SUBJECT_COLUMNS = (
    "subject_ref",
    "category",
    "image",
    "image_source",
    "legal_basis",
    "image_date",
    "last_review_date",
    "under_18",
    "under_18_justification",
)
DEFAULT_MAX_IMAGE_AGE_YEARS = 5  # a policy default, not a legal limit; the build flag overrides it
EARLY_BUILD = timedelta(hours=24)  # Croydon practice: built at most 24 h before the deployment


@dataclass(frozen=True)
class SubjectRow:
    line: int
    subject_ref: str
    category: str
    images: tuple[str, ...]
    image_source: str
    legal_basis: str
    image_dates: tuple[date, ...]  # one per image
    last_review_date: date
    under_18: bool
    under_18_justification: str | None


@dataclass(frozen=True)
class BuildWarning:
    code: str  # old_image, low_quality, no_face, multiple_faces, unreadable_image, subject_excluded, early_build
    subject_ref: str
    message: str


@dataclass
class BuildResult:
    package: bytes
    entries: list[WatchlistEntry]  # the central listings, in package order (the package holds only their device entries)
    warnings: list[BuildWarning] = field(default_factory=list)
    #: The signed central build record (build_record.py): what the package leaves out, bound to it.
    record: bytes = b""
    #: The kept reference images sealed to the control room (edge_agent.control_room.references);
    #: None when no control-room key was given. Central only: never part of the package.
    references: bytes | None = None

    @property
    def template_count(self) -> int:
        return sum(e.templates for e in self.entries)


def read_subjects_csv(path: Path) -> list[SubjectRow]:
    """Parse and validate every row; all problems are reported together, with line numbers."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"subjects file {path} not found", "check the --subjects path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"subjects file {path} is not UTF-8 text", "save it as UTF-8 CSV") from None
    reader = csv.DictReader(text.splitlines())
    header = tuple(reader.fieldnames or ())
    missing = [c for c in SUBJECT_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"{path} lacks column(s) {', '.join(missing)}", f"columns: {', '.join(SUBJECT_COLUMNS)}")
    extra = [c for c in header if c not in SUBJECT_COLUMNS]
    if extra:
        raise ConfigError(f"{path} has unexpected column(s) {', '.join(extra)}", "names and other personal data do not belong in the build input")
    rows, problems = [], []
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append(_parse_row(line, raw))
        except (ConfigError, ValueError) as exc:
            problems.append(f"line {line}: {exc}")
    seen: dict[str, int] = {}
    for row in rows:
        if row.subject_ref in seen:
            problems.append(f"line {row.line}: subject_ref {row.subject_ref} repeats line {seen[row.subject_ref]}")
        seen.setdefault(row.subject_ref, row.line)
    if problems:
        raise ConfigError(f"{path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems), "fix the rows and build again")
    if not rows:
        raise ConfigError(f"{path} lists no subjects", "add at least one row")
    return rows


def _parse_row(line: int, raw: dict[str | None, Any]) -> SubjectRow:
    if None in raw:
        raise ValueError("more cells than columns (quote cells that contain commas)")
    cells = {k: (raw.get(k) or "").strip() for k in SUBJECT_COLUMNS}
    images = tuple(p.strip() for p in cells["image"].split(";") if p.strip())
    if not images:
        raise ValueError("no image given")
    dates = tuple(_date(d, "image_date") for d in cells["image_date"].split(";") if d.strip())
    if len(dates) == 1:
        dates = dates * len(images)
    if len(dates) != len(images):
        raise ValueError(f"{len(images)} images but {len(dates)} image dates (give one date, or one per image)")
    under_18 = cells["under_18"].lower()
    if under_18 not in ("yes", "no"):
        raise ValueError(f"under_18 must be yes or no, not {cells['under_18']!r}")
    row = SubjectRow(
        line,
        cells["subject_ref"],
        cells["category"],
        images,
        cells["image_source"],
        cells["legal_basis"],
        dates,
        _date(cells["last_review_date"], "last_review_date"),
        under_18 == "yes",
        cells["under_18_justification"] or None,
    )
    # Validate the entry rules (category, reference, under-18 justification) before any embedding.
    _entry(row, 1)
    return row


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a date like 2025-03-31") from None


def _entry(row: SubjectRow, templates: int, image_date: date | None = None) -> WatchlistEntry:
    return WatchlistEntry(
        row.subject_ref,
        row.category,
        row.image_source,
        row.legal_basis,
        image_date or min(row.image_dates),
        row.last_review_date,
        row.under_18,
        row.under_18_justification,
        templates,
    )


def _inside(images_dir: Path, name: str) -> bool:
    base = Path(images_dir).resolve()
    path = (base / name).resolve()
    return base in path.parents


def build_watchlist(
    deployment: SignedDeployment,
    subjects: Sequence[SubjectRow],
    images_dir: Path,
    recipients: Mapping[str, X25519PublicKey],
    authority_key: Ed25519PrivateKey,
    core: RecognitionCore,
    now: datetime,
    max_image_age_years: float = DEFAULT_MAX_IMAGE_AGE_YEARS,
    expires: datetime | None = None,
    on_image: Callable[[], None] | None = None,
    control_room: X25519PublicKey | None = None,
) -> BuildResult:
    """Embed each subject's images with ``core`` (a RecognitionCore) and pack the result."""
    from edge_agent.vision.enrolment import LOW_QUALITY, MULTIPLE_FACES, NO_FACE, enrol_image
    from edge_agent.vision.image_io import read_image

    record = deployment.verify(authority_key.public_key())
    if len(subjects) > record.watchlist_cap:  # fail before spending minutes embedding
        raise WatchlistBuildError(
            f"{len(subjects)} subjects exceed deployment {record.deployment_id}'s watchlist cap of {record.watchlist_cap}",
            "reduce the watchlist or have a deployment authorised with a larger cap (policing.md 7)",
        )
    missing = [
        f"line {row.line}: {name}"
        for row in subjects
        for name in row.images
        if not _inside(images_dir, name) or not (Path(images_dir) / name).is_file()
    ]
    if missing:  # a typo in the CSV must not silently drop a subject after minutes of embedding
        raise ConfigError(
            f"{len(missing)} reference image(s) missing or outside {images_dir}:\n  " + "\n  ".join(missing),
            "give existing image paths relative to --images",
        )
    warnings: list[BuildWarning] = []
    reference_images: list[tuple[str, int, date, bytes]] = []
    if record.start - now > EARLY_BUILD:
        warnings.append(BuildWarning("early_build", "-", f"built {record.start - now} before the deployment starts (practice: at most 24 h)"))
    oldest_ok = now.date() - timedelta(days=round(365.25 * max_image_age_years))
    codes = {NO_FACE: "no_face", MULTIPLE_FACES: "multiple_faces", LOW_QUALITY: "low_quality"}
    entries: list[WatchlistEntry] = []
    vectors: list[np.ndarray] = []
    for row in subjects:
        kept: list[np.ndarray] = []
        kept_dates: list[date] = []
        for name, image_date in zip(row.images, row.image_dates, strict=True):
            try:
                enrolment = enrol_image(core, read_image(Path(images_dir) / name))
            except ImageError as exc:
                warnings.append(BuildWarning("unreadable_image", row.subject_ref, f"{name}: {exc.message}; image skipped"))
                continue
            finally:
                if on_image:
                    on_image()
            if not enrolment.ok:
                warnings.append(BuildWarning(codes.get(enrolment.reason or "", "low_quality"), row.subject_ref, f"{name}: {enrolment.detail or enrolment.reason}; image skipped"))
                continue
            if image_date < oldest_ok:
                warnings.append(BuildWarning("old_image", row.subject_ref, f"{name}: taken {image_date}, older than {max_image_age_years} years"))
            kept.append(np.asarray(enrolment.template, np.float32))
            if control_room is not None:  # the reviewer sees the images the templates came from
                reference_images.append((row.subject_ref, len(kept) - 1, image_date, (Path(images_dir) / name).read_bytes()))
            kept_dates.append(image_date)
        if not kept:
            warnings.append(BuildWarning("subject_excluded", row.subject_ref, f"line {row.line}: no usable reference image; subject NOT on the watchlist"))
            continue
        entries.append(_entry(row, len(kept), min(kept_dates)))
        vectors.extend(kept)
    if not entries:
        raise WatchlistBuildError("no subject has a usable reference image", "check the images (see the warnings)")
    package = pack_watchlist(
        deployment, entries, np.stack(vectors), _identity(core), recipients, authority_key, now, expires
    )
    references = None
    if control_room is not None:
        from edge_agent.control_room.references import seal_references

        kept_subjects = {e.subject_ref for e in entries}
        references = seal_references(record.deployment_id, [r for r in reference_images if r[0] in kept_subjects], control_room)
    record_bytes = sign_build_record(
        make_build_record(package, entries, [{"code": w.code, "subject_ref": w.subject_ref, "message": w.message} for w in warnings]),
        authority_key,
    )
    return BuildResult(package, entries, warnings, record_bytes, references)


def _identity(core: RecognitionCore) -> dict[str, str]:
    return core.identity.as_dict()
