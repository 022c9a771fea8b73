"""Embeddings (or enrolment failures) already computed, keyed by image sha256 and model identity.

Embedding dominates evaluation time; the cache lets a calibration, a gate run or a new watchlist
size reuse earlier work, and a changed model or image can never be served a stale vector because
both are in the key. The file holds biometric templates of the evaluation subjects, so it is
created 0600 in a 0700 directory; keep it under the same protection as the dataset.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from edge_agent.errors import EdgeAgentError

EMBEDDING_DIM = 128


class CacheError(EdgeAgentError):
    """The embedding cache file cannot be opened or is not one of ours."""


@dataclass(frozen=True)
class EnrolmentOutcome:
    """What the pipeline made of one image: an embedding, or why there is none."""

    embedding: np.ndarray | None
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.embedding is not None


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-agent" / "evaluation-embeddings.sqlite"


class EmbeddingCache:
    """SQLite store: (model_key, sha256) -> embedding bytes or failure reasons."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self._db = sqlite3.connect(self.path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model_key TEXT NOT NULL, sha256 TEXT NOT NULL, "
                "reasons TEXT NOT NULL, embedding BLOB, PRIMARY KEY (model_key, sha256))")
            self._db.commit()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise CacheError(f"cannot use embedding cache {self.path}: {exc}",
                             "delete the file to rebuild it, pass another --cache path, or use --no-cache") from exc
        self._pending = 0

    def get(self, model_key: str, sha256: str) -> EnrolmentOutcome | None:
        row = self._db.execute("SELECT reasons, embedding FROM embeddings WHERE model_key=? AND sha256=?",
                               (model_key, sha256)).fetchone()
        if row is None:
            return None
        reasons = tuple(json.loads(row[0]))
        if row[1] is None:
            return EnrolmentOutcome(None, reasons)
        vec = np.frombuffer(row[1], dtype="<f4")
        if vec.size != EMBEDDING_DIM:
            return None  # not something we wrote; recompute rather than trust it
        return EnrolmentOutcome(vec.copy(), reasons)

    def put(self, model_key: str, sha256: str, outcome: EnrolmentOutcome) -> None:
        blob = None if outcome.embedding is None else np.asarray(outcome.embedding, dtype="<f4").tobytes()
        self._db.execute("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                         (model_key, sha256, json.dumps(list(outcome.reasons)), blob))
        self._pending += 1
        if self._pending >= 256:
            self.flush()

    def flush(self) -> None:
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        self.flush()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
