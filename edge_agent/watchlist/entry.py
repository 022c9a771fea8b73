"""What the watchlist records about one subject, centrally and on the device (policing.md 5-8).

Two records on purpose (issue 10.6): ``WatchlistEntry`` is the central listing, with why and on
what basis the subject is listed (image source, legal basis, image and review dates, whether a
child and why that is justified); it is validated at build time and kept in the central build
record (build_record.py). ``DeviceEntry`` is what a package (format v2) carries to a device:
only what matching and an alert need, an opaque reference, the category and the template count.
Neither ever holds a name or an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.identifiers import check_subject_ref

# Closed list (policing.md 5; Bridges: a free-form "other" gave too broad a discretion).
CATEGORIES = ("wanted_by_court", "suspect", "missing_vulnerable", "risk_to_self_or_others")
MAX_TEXT = 200
#: The on-device entry (watchlist package format v2).
DEVICE_ENTRY_FIELDS = ("subject_ref", "category", "templates")
#: The central listing: build input, build record, and the entries of legacy v1 packages.
ENTRY_FIELDS = (
    "subject_ref",
    "category",
    "image_source",
    "legal_basis",
    "image_date",
    "last_review_date",
    "under_18",
    "under_18_justification",
    "templates",
)


def _check_listed(subject_ref: str, category: str, templates: object) -> None:
    # Opaque case/system references (no spaces, so "Firstname Lastname" cannot slip in; no '/').
    check_subject_ref(subject_ref)
    if category not in CATEGORIES:
        raise ConfigError(
            f"subject {subject_ref}: category {category!r} is not on the closed list",
            f"use one of {', '.join(CATEGORIES)}",
        )
    if type(templates) is not int:
        raise ConfigError(f"subject {subject_ref}: templates {templates!r} is not an integer", "the package must be rebuilt")
    if templates < 1:
        raise ConfigError(f"subject {subject_ref} has no template", "every entry needs at least one usable image")


def _closed_category(value: Any) -> Any:
    """The closed list's own string for ``value`` (anything else unchanged, for the check to
    refuse): a device's 10,000 entries then share four strings instead of each holding its own
    copy parsed from the package (issue 14, RSS: 0.7 MB)."""
    for category in CATEGORIES:
        if value == category:
            return category
    return value


@dataclass(frozen=True, slots=True)  # slots: 10,000 of them on a device, without a __dict__ each
class DeviceEntry:
    """One subject as a device holds it: matching needs templates, an opaque reference and the category."""

    subject_ref: str
    category: str
    templates: int  # number of templates this subject contributes, in package order

    def __post_init__(self) -> None:
        _check_listed(self.subject_ref, self.category, self.templates)

    def to_json(self) -> dict[str, Any]:
        return {"subject_ref": self.subject_ref, "category": self.category, "templates": self.templates}

    @classmethod
    def from_json(cls, doc: Any) -> "DeviceEntry":
        if not isinstance(doc, dict) or set(doc) != set(DEVICE_ENTRY_FIELDS):
            raise ConfigError("watchlist entry has missing or unexpected fields", f"expected {', '.join(DEVICE_ENTRY_FIELDS)}")
        return cls(doc["subject_ref"], _closed_category(doc["category"]), doc["templates"])


@dataclass(frozen=True)
class WatchlistEntry:
    """One subject's central listing (build input and build record; never on a v2 device)."""

    subject_ref: str
    category: str
    image_source: str
    legal_basis: str
    image_date: date  # date of the (oldest) reference image used
    last_review_date: date
    under_18: bool
    under_18_justification: str | None
    templates: int  # number of templates this subject contributes, in package order

    def __post_init__(self) -> None:
        _check_listed(self.subject_ref, self.category, self.templates)
        for name in ("image_source", "legal_basis"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise ConfigError(f"subject {self.subject_ref}: {name} must be 1-{MAX_TEXT} characters", f"record the {name.replace('_', ' ')}")
        if self.under_18 and not (self.under_18_justification or "").strip():
            raise ConfigError(
                f"subject {self.subject_ref} is under 18 but has no recorded justification",
                "record why including a child is necessary and proportionate (under_18_justification)",
            )
        if self.last_review_date < self.image_date:
            raise ConfigError(f"subject {self.subject_ref}: last review {self.last_review_date} is before the image date {self.image_date}", "check the dates")

    def device_entry(self) -> DeviceEntry:
        """What a device is given: the reference, the category and the template count, nothing else."""
        return DeviceEntry(self.subject_ref, self.category, self.templates)

    def to_json(self) -> dict[str, Any]:
        return {
            "subject_ref": self.subject_ref,
            "category": self.category,
            "image_source": self.image_source,
            "legal_basis": self.legal_basis,
            "image_date": self.image_date.isoformat(),
            "last_review_date": self.last_review_date.isoformat(),
            "under_18": self.under_18,
            "under_18_justification": self.under_18_justification,
            "templates": self.templates,
        }

    @classmethod
    def from_json(cls, doc: Any) -> "WatchlistEntry":
        if not isinstance(doc, dict) or set(doc) != set(ENTRY_FIELDS):
            raise ConfigError("watchlist entry has missing or unexpected fields", f"expected {', '.join(ENTRY_FIELDS)}")
        try:
            return cls(
                subject_ref=doc["subject_ref"],
                category=doc["category"],
                image_source=doc["image_source"],
                legal_basis=doc["legal_basis"],
                image_date=date.fromisoformat(doc["image_date"]),
                last_review_date=date.fromisoformat(doc["last_review_date"]),
                under_18=bool(doc["under_18"]) if isinstance(doc["under_18"], bool) else _bad("under_18"),
                under_18_justification=doc["under_18_justification"],
                templates=doc["templates"] if type(doc["templates"]) is int else _bad("templates"),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"watchlist entry is malformed: {exc}", "the package must be rebuilt") from None


def _bad(name: str) -> Any:
    raise ValueError(f"{name} has the wrong type")
