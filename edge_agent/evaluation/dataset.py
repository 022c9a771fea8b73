"""A labelled evaluation set: ``<root>/<identity>/<image>`` plus an optional identity-to-group CSV.

Only the folder layout carries labels, so any set (LFW-style, a force's own consented test set)
can be evaluated without a bespoke manifest.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import EdgeAgentError
from edge_agent.vision.model_files import sha256_file

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
#: Group for identities the groups CSV does not mention; reported like any other group.
UNLABELLED_GROUP = "(unlabelled)"


class DatasetError(EdgeAgentError):
    """The evaluation set or its groups file is missing or malformed."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    identity: str


@dataclass(frozen=True)
class LabelledDataset:
    root: Path
    images: tuple[LabelledImage, ...]

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(sorted({im.identity for im in self.images}))

    def content_sha256(self) -> str:
        """Identity of the set's labels and bytes, independent of where it is stored: SHA-256 over
        ``<identity>/<file name>\0<file sha256>\n`` per image in scan order. A calibration cites it."""
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(f"{image.identity}/{image.path.name}\0{sha256_file(image.path)}\n".encode())
        return digest.hexdigest()


def scan_dataset(root: Path) -> LabelledDataset:
    """List the images under ``root/<identity>/``, sorted, so runs are reproducible."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"evaluation set {root} is not a directory",
                           "pass a folder laid out as <identity>/<image>, e.g. ../shared/datasets/faces-dev")
    images: list[LabelledImage] = []
    for identity_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(identity_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(LabelledImage(path, identity_dir.name))
    if not images:
        raise DatasetError(f"no images found under {root}",
                           f"expected <identity>/<image> with suffixes {', '.join(sorted(IMAGE_SUFFIXES))}")
    return LabelledDataset(root, tuple(images))


def load_groups(path: Path, identities: tuple[str, ...] | None = None) -> dict[str, str]:
    """Read ``identity,group`` rows; identities absent from the file get ``UNLABELLED_GROUP``.

    A header row ``identity,group`` is required so a column swap cannot go unnoticed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read groups file {path}: {exc.strerror}", "check the --groups path") from exc
    reader = csv.reader(text.splitlines())
    rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["identity", "group"]:
        raise DatasetError(f"groups file {path} must start with the header 'identity,group'",
                           "one row per identity: <identity folder name>,<group label>")
    groups: dict[str, str] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DatasetError(f"groups file {path} line {line_no}: expected 'identity,group', got {row!r}",
                               "fill in both columns")
        identity, group = row[0].strip(), row[1].strip()
        if identity in groups and groups[identity] != group:
            raise DatasetError(f"groups file {path} line {line_no}: identity {identity!r} is in two groups "
                               f"({groups[identity]!r} and {group!r})", "give each identity one group")
        groups[identity] = group
    if identities is not None:
        return {identity: groups.get(identity, UNLABELLED_GROUP) for identity in identities}
    return groups
