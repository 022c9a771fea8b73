"""The demo's "non-matching faces left no trace", checked rather than claimed (issue 10.19).

After the run it recomputes, from the same video, the template of every face that did not match
the watchlist (what a careless agent could have leaked), and searches for those templates
(float32, float64 and float16 bytes of their leading components) and for any image data (JPEG,
PNG) in: every file of the work folder (state directory, spool, audit logs, control-room store,
the broker's persistence file and log), the spool's rows, and every message the broker carried on
the alert, status and telemetry topics. The input video is the one file left out (it is the
camera's own footage). Sealed crops are encrypted, so they cannot match either search; a crop
or template written in the clear would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass
class TraceReport:
    files: int = 0
    bytes: int = 0
    spool_rows: int = 0
    broker_messages: int = 0
    non_matching_faces: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def line(self) -> str:
        where = (f"{self.files} files ({self.bytes / 1e6:.1f} MB) in the work folder (the input video aside), {self.spool_rows} spool rows "
                 f"and {self.broker_messages} messages the broker carried, searched for the templates of the {self.non_matching_faces} "
                 f"non-matching faces seen and for image data")
        if self.clean:
            return f"Non-matching faces left no trace: checked {where}: none found."
        return f"TRACE FOUND of a non-matching face: checked {where}: " + "; ".join(self.findings[:5])


def template_needles(templates: Iterable[np.ndarray]) -> list[bytes]:
    needles = []
    for t in templates:
        t = np.asarray(t, dtype=np.float64).ravel()
        needles += [t[:4].astype("<f4").tobytes(), t[:4].astype("<f8").tobytes(), t[:6].astype("<f2").tobytes()]
    return needles


def non_matching_templates(core, video: Path, references: list[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Templates of every face in ``video`` whose best score against ``references`` is below ``threshold``."""
    import cv2

    refs = np.stack([r / np.linalg.norm(r) for r in references])
    found = []
    cap = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            for face in core.faces(frame):
                if face.embedding is None:
                    continue
                e = face.embedding / np.linalg.norm(face.embedding)
                if float(np.max(refs @ e)) < threshold:
                    found.append(face.embedding.copy())
    finally:
        cap.release()
    return found


def search(report: TraceReport, name: str, blob: bytes, needles: list[bytes]) -> None:
    for needle in needles:
        if needle in blob:
            report.findings.append(f"{name}: template bytes {needle[:8].hex()}…")
            return
    for magic in IMAGE_MAGIC:
        if magic in blob:
            report.findings.append(f"{name}: image data ({magic[:4]!r})")
            return


def check_no_trace(workdir: Path, skip: Iterable[Path], needles: list[bytes], spool_rows: list[bytes], messages: list[tuple[str, bytes]],
                   non_matching_faces: int) -> TraceReport:
    report = TraceReport(non_matching_faces=non_matching_faces)
    skipped = {Path(p).resolve() for p in skip}
    for path in sorted(Path(workdir).rglob("*")):
        if not path.is_file() or path.resolve() in skipped:
            continue
        blob = path.read_bytes()
        report.files += 1
        report.bytes += len(blob)
        search(report, str(path.relative_to(workdir)), blob, needles)
    for i, row in enumerate(spool_rows):
        report.spool_rows += 1
        search(report, f"spool row {i + 1}", row, needles)
    for topic, payload in messages:
        report.broker_messages += 1
        search(report, f"message on {topic}", payload, needles)
    return report
