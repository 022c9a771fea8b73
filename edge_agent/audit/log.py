"""Tamper-evident, append-only audit log (policing.md 15).

One JSON object per line, each line exactly the RFC 8785 encoding of its record (version 2;
version 1 lines, Python canonical JSON, still verify). Each record carries ``prev`` (the previous
record's hash) and ``hash`` (SHA-256 over the canonical JSON of the record without
``hash``/``signature``), so editing,
dropping or reordering any record breaks the chain. Every ``checkpoint_every`` records the device
key signs a checkpoint over the chain head, so a forger without the device key cannot rebuild the
chain. Appends are fsync'd and serialised with ``flock`` so the agent and the CLI can share a log.
No biometric data: details that look like templates, images or crops are refused.
Format: docs/formats/audit.md.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.crypto.canonical import CanonicalJsonError, canonical_json, format_utc, jcs
from edge_agent.crypto.signing import AUDIT_CHECKPOINT_V1, sign
from edge_agent.durable import atomic_write, fsync_dir
from edge_agent.timestamps import format_timestamp
from edge_agent.errors import EdgeAgentError
from edge_agent.identifiers import IdentifierError, check_actor
from edge_agent.safe_load import json_loads

AUDIT_VERSION = 2  # what the writer writes
READABLE_VERSIONS = (1, 2)
AUDIT_FILE_NAME = "audit.log"  # the default log name inside a device state directory
GENESIS_HASH = "0" * 64
CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_DOMAIN = AUDIT_CHECKPOINT_V1
# The kinds the device writes (docs/formats/audit.md lists them, and the control room's, and a
# test checks the list against every kind the code writes); other snake_case kinds are accepted
# so a new event needs no format bump.
KINDS = (
    "watchlist_loaded",
    "watchlist_refused",
    "watchlist_wiped",
    "config_changed",
    "alert_raised",
    "receipt_received",
    "adjudication_received",
    "spool_dropped",
    "deployment_ended",
    "faces_processed",
    "session_summary",
    "storage_failed",
    "storage_recovered",
    "audit_tail_repaired",
    "clock_set_back",
    "search_run",
    "search_refused",
)
TORN_SCAN_BYTES = 1 << 20  # how far back open() looks for the last whole record of a torn log
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{2,47}")
_KIND = KIND_PATTERN
# Names that only ever hold biometric material; refused whatever their value.
_BIOMETRIC_KEYS = frozenset({"embedding", "embeddings", "template", "templates", "crop", "crops", "image", "images", "frame", "frames", "probe", "face_image", "vector"})
MAX_STRING = 1000  # a base64 128-D float32 template is ~684 chars; crops are far longer
MAX_NUMBER_LIST = 16
_logger = logging.getLogger(__name__)


class AuditError(EdgeAgentError):
    """The audit log cannot be written, or a record would break its rules."""


class BiometricDataRefused(AuditError):
    """Something that looks like biometric data was offered to the audit log."""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    actor: str
    kind: str
    details: dict[str, Any]
    prev: str
    hash: str
    signature: str | None = None

    v: int = AUDIT_VERSION

    def to_json(self) -> dict[str, Any]:
        doc = record_body(self.seq, self.time, self.actor, self.kind, self.details, self.prev, self.v)
        doc["hash"] = self.hash
        if self.signature is not None:
            doc["signature"] = self.signature
        return doc


def record_body(seq: int, time: str, actor: str, kind: str, details: dict[str, Any], prev: str, v: int = AUDIT_VERSION) -> dict[str, Any]:
    return {"v": v, "seq": seq, "time": time, "actor": actor, "kind": kind, "details": details, "prev": prev}


def encode(doc: dict[str, Any]) -> bytes:
    """The canonical bytes of a record (or body) of its version: RFC 8785 for v2, canonical_json for v1."""
    return jcs(doc) if doc.get("v") == 2 else canonical_json(doc)


def record_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(encode(body)).hexdigest()


def format_record_time(moment: datetime, v: int = AUDIT_VERSION) -> str:
    """v2: the one timestamp form (sorts as text); v1 dropped a zero fraction."""
    return format_timestamp(moment) if v == 2 else format_utc(moment)


def check_no_biometrics(details: Any, where: str = "details") -> None:
    """Refuse bytes, arrays, long numeric lists, long strings and biometric field names."""
    if isinstance(details, (bytes, bytearray, memoryview)):
        raise BiometricDataRefused(f"audit {where} holds raw bytes", "no biometric data in the audit log: record a reference, not the data")
    if type(details).__module__ == "numpy":
        raise BiometricDataRefused(
            f"audit {where} holds a numpy {type(details).__name__}", "no biometric data in the audit log; convert scalars with float()/int()"
        )
    if isinstance(details, str) and len(details) > MAX_STRING:
        raise BiometricDataRefused(f"audit {where} is a {len(details)}-character string (limit {MAX_STRING})", "no encoded images or templates in the audit log")
    if isinstance(details, dict):
        for key, value in details.items():
            if isinstance(key, str) and key.lower() in _BIOMETRIC_KEYS:
                raise BiometricDataRefused(f"audit {where}.{key} is a biometric field", "no biometric data in the audit log")
            check_no_biometrics(value, f"{where}.{key}")
    elif isinstance(details, (list, tuple)):
        numbers = sum(1 for v in details if isinstance(v, (int, float)) and not isinstance(v, bool))
        if numbers > MAX_NUMBER_LIST:
            raise BiometricDataRefused(
                f"audit {where} is a list of {numbers} numbers (limit {MAX_NUMBER_LIST})", "no templates or embeddings in the audit log"
            )
        for i, value in enumerate(details):
            check_no_biometrics(value, f"{where}[{i}]")


def _check_actor(actor: str) -> str:
    try:
        return check_actor(actor)
    except IdentifierError as exc:
        raise AuditError(exc.message, exc.hint) from None


class AuditLog:
    """Appends records to one file; open with :meth:`open`."""

    def __init__(self, path: Path, fd: int, signing_key: Ed25519PrivateKey | None, actor: str, checkpoint_every: int) -> None:
        self.path = path
        self._fd = fd
        self._signing_key = signing_key
        self._actor = actor
        self._checkpoint_every = checkpoint_every
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing this descriptor

    @classmethod
    def open(cls, path: Path, signing_key: Ed25519PrivateKey | None, actor: str, checkpoint_every: int = 100) -> "AuditLog":
        """Open (creating 0600 if needed). A torn tail (a crash or full disk mid-append, from a
        writer older than the all-or-nothing append) is cut back to the last whole record, the cut
        bytes kept beside the log as evidence and an ``audit_tail_repaired`` record appended: a
        torn log is never a reason for the agent not to start (issue 11)."""
        path = Path(path)
        if checkpoint_every < 1:
            raise AuditError("checkpoint_every must be at least 1", "use the default 100")
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open audit log {path}: {exc.strerror}", "check the state directory exists and is writable") from None
        if created:
            fsync_dir(path.parent)
        try:
            log = cls(path, fd, signing_key, _check_actor(actor), checkpoint_every)
            with log._locked():
                repaired = log._repair_tail()
                log._tail()  # validates the last record now, not at the first alert
                if repaired is not None:
                    seq, prev = log._tail()
                    try:
                        log._write(seq + 1, datetime.now(timezone.utc), log._actor, "audit_tail_repaired", repaired, prev)
                    except AuditError as exc:  # still full: start anyway, the cut is logged
                        _logger.error("audit log %s: the repair could not be recorded: %s", path, exc.message)
        except BaseException:
            os.close(fd)
            raise
        return log

    def close(self, now: datetime | None = None) -> None:
        """Sign the head (so nothing written is left unsigned) and release the file."""
        if self._fd >= 0:
            try:
                self.checkpoint(now)
            finally:
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, kind: str, details: dict[str, Any], actor: str | None = None, now: datetime | None = None) -> AuditRecord:
        if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind == CHECKPOINT_KIND:
            raise AuditError(f"audit kind {kind!r} is invalid", f"use a snake_case kind such as {', '.join(KINDS[:3])}")
        if not isinstance(details, dict):
            raise AuditError("audit details must be a dict", "pass a dict of plain values")
        check_no_biometrics(details)
        try:
            jcs(details)
        except CanonicalJsonError as exc:
            raise AuditError(f"audit details are not plain JSON: {exc.message}", exc.hint) from None
        who = _check_actor(actor) if actor is not None else self._actor
        moment = now or datetime.now(timezone.utc)
        with self._locked():
            seq, prev = self._tail()
            record = self._write(seq + 1, moment, who, kind, details, prev)
            if self._signing_key is not None and (record.seq + 1) % self._checkpoint_every == 0:
                self._write_checkpoint(record, moment)
        return record

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (-1, 64 zeros) while the log is empty. Alerts carry it."""
        with self._locked():
            return self._tail()

    def last_time(self) -> datetime | None:
        """The time of the last record: time this device has already seen (agent/trusted_time.py)."""
        with self._locked():
            doc = self._last_record()
        try:
            return datetime.fromisoformat(str(doc["time"]).replace("Z", "+00:00")) if doc is not None else None
        except (KeyError, ValueError):
            return None

    def checkpoint(self, now: datetime | None = None) -> AuditRecord | None:
        """Sign the current head now (e.g. at shutdown); None if there is no key or nothing to sign."""
        if self._signing_key is None:
            return None
        with self._locked():
            seq, prev = self._tail()
            if seq < 0:
                return None
            last = self._last_record()
            if last is not None and last.get("kind") == CHECKPOINT_KIND:
                return None
            return self._write_checkpoint_raw(seq, prev, now or datetime.now(timezone.utc))

    # -- internals --------------------------------------------------------------------------

    def _write_checkpoint(self, head: AuditRecord, moment: datetime) -> AuditRecord:
        return self._write_checkpoint_raw(head.seq, head.hash, moment)

    def _write_checkpoint_raw(self, head_seq: int, head_hash: str, moment: datetime) -> AuditRecord:
        details = {"head_seq": head_seq, "head_hash": head_hash}
        return self._write(head_seq + 1, moment, self._actor, CHECKPOINT_KIND, details, head_hash, signed=True)

    def _write(self, seq: int, moment: datetime, actor: str, kind: str, details: dict, prev: str, signed: bool = False) -> AuditRecord:
        body = record_body(seq, format_record_time(moment), actor, kind, details, prev)
        digest = record_hash(body)
        signature = None
        if signed:
            if self._signing_key is None:
                raise AuditError("a checkpoint needs the signing key", "open the audit log with the device's signing key")
            signature = base64.b64encode(sign(self._signing_key, CHECKPOINT_DOMAIN, bytes.fromhex(digest))).decode("ascii")
        record = AuditRecord(seq, body["time"], actor, kind, details, prev, digest, signature)
        line = encode(record.to_json()) + b"\n"
        size = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(28, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            # All or nothing: a partial line (ENOSPC mid-write) is cut off again at once.
            try:
                os.ftruncate(self._fd, size)
                os.fsync(self._fd)
            except OSError:
                pass  # then the next open() cuts it (_repair_tail)
            raise AuditError(
                f"cannot write audit log {self.path}: {exc.strerror or exc}", "free disk space; the action was not recorded"
            ) from None
        return record

    def _repair_tail(self) -> dict[str, Any] | None:
        """Cut anything after the last whole, parseable record; returns the repair's audit details."""
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if size == 0:
            return None
        start = max(0, size - TORN_SCAN_BYTES)
        data = os.pread(self._fd, size - start, start)
        keep = len(data)
        while keep > 0:
            if data[keep - 1 : keep] != b"\n":  # unterminated: torn
                cut = data.rfind(b"\n", 0, keep)
                keep = cut + 1 if cut >= 0 else 0
                continue
            cut = data.rfind(b"\n", 0, keep - 1)
            if _is_record(data[cut + 1 : keep - 1]):
                break
            keep = cut + 1 if cut >= 0 else 0
        if keep == len(data):
            return None
        if keep == 0 and start > 0:
            raise AuditError(
                f"audit log {self.path} has no whole record in its last {TORN_SCAN_BYTES} bytes",
                "run edge-agent audit verify; keep this file as evidence and move it aside to start a new log",
            )
        torn = data[keep:]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        evidence = self.path.with_name(f"{self.path.name}.torn-{stamp}")
        try:
            atomic_write(evidence, torn, mode=0o600)
            kept_as: str | None = evidence.name
        except OSError as exc:  # a full disk: the hash in the repair record still identifies the bytes
            _logger.error("audit log %s: cannot keep the torn tail as evidence: %s", self.path, exc)
            kept_as = None
        os.ftruncate(self._fd, start + keep)
        os.fsync(self._fd)
        _logger.warning("audit log %s: cut a torn tail of %d bytes (kept as %s)", self.path, len(torn), kept_as)
        return {"cut_bytes": len(torn), "cut_sha256": hashlib.sha256(torn).hexdigest(), "kept_as": kept_as}

    def _locked(self) -> "_Flock":
        if self._fd < 0:
            raise AuditError("audit log is closed", "open it again")
        return _Flock(self._fd, self._thread_lock)

    def _last_line(self) -> bytes | None:
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if size == 0:
            return None
        chunk = 4096
        while True:
            start = max(0, size - chunk)
            data = os.pread(self._fd, size - start, start)
            if not data.endswith(b"\n"):
                raise AuditError(
                    f"audit log {self.path} ends with a torn (unterminated) record",
                    "run edge-agent audit verify; keep this file as evidence and move it aside to start a new log",
                )
            cut = data.rfind(b"\n", 0, len(data) - 1)
            if cut >= 0 or start == 0:
                return data[cut + 1 :]
            chunk *= 4

    def _last_record(self) -> dict | None:
        line = self._last_line()
        if line is None:
            return None
        try:
            doc = json_loads(line)
            int(doc["seq"]), str(doc["hash"])
        except (ValueError, KeyError, TypeError):
            raise AuditError(
                f"the last line of audit log {self.path} is not an audit record",
                "run edge-agent audit verify; keep this file as evidence and move it aside to start a new log",
            ) from None
        return doc

    def _tail(self) -> tuple[int, str]:
        doc = self._last_record()
        if doc is None:
            return -1, GENESIS_HASH
        return int(doc["seq"]), str(doc["hash"])


def _is_record(line: bytes) -> bool:
    try:
        doc = json_loads(line)
        int(doc["seq"]), str(doc["hash"])
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(doc, dict)


class _Flock:
    """Excludes other threads (thread lock) and other processes (flock) while a record is appended."""

    def __init__(self, fd: int, thread_lock: threading.Lock) -> None:
        self._fd = fd
        self._thread_lock = thread_lock

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
