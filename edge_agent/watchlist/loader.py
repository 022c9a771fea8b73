"""On the device: verify a watchlist package, then decrypt it into memory only.

Order of checks: magic and version (specific messages), the authority signature over the whole
package (before trusting any header field), structure, model identity, validity window,
deployment policy (signature, device, threshold approval), the device's seal, the payload.
The plaintext exists only as Python objects; nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edge_agent.crypto.canonical import CanonicalJsonError, parse_utc
from edge_agent.crypto.sealing import open_sealed
from edge_agent.crypto.signing import SignatureInvalid, verify
from edge_agent.deployment.errors import DeploymentRefused
from edge_agent.deployment.policy import authorise
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identity.keys import DeviceKeys
from edge_agent.memory import trim_heap
from edge_agent.timestamps import TimestampError, parse_timestamp, truncate_to_ms
from edge_agent.vision.identity import explain_aligner_change
from edge_agent.watchlist.entry import DeviceEntry, WatchlistEntry
from edge_agent.watchlist.errors import (
    DeploymentMismatch,
    ModelMismatch,
    PackageTampered,
    WatchlistExpired,
    WatchlistNotYetValid,
    WrongDevice,
)
from edge_agent.watchlist.format import (
    EMBEDDING_DIM,
    FORMAT_NAME,
    META_LEN_BYTES,
    NONCE_LEN,
    SEAL_CONTEXTS,
    SIGNATURE_DOMAINS,
    TAG_LEN,
    TEMPLATE_DTYPE,
    Container,
    check_template_bytes,
    decode_container,
    decode_entries,
    decode_meta_length,
    package_version,
    seal_aad,
    split_signature,
)
from edge_agent.watchlist.gallery import Candidate, Gallery


@dataclass(frozen=True)
class LoadedWatchlist:
    """A verified, decrypted watchlist held in memory for one deployment."""

    gallery: Gallery
    entries: tuple[DeviceEntry, ...]  # only reference, category and template count (v1 extras dropped)
    deployment: DeploymentRecord
    expires_at: datetime
    not_before: datetime
    version: int
    package_id: str
    model: dict[str, str]
    device_id: str

    def active(self, now: datetime) -> bool:
        return self.not_before <= now < self.expires_at and self.deployment.is_active(now)

    def search(self, probe: np.ndarray, now: datetime, k: int = 5) -> list[Candidate]:
        """Top-k candidates, or nothing at all outside the deployment window (policing.md 2)."""
        if not self.active(now):
            return []
        return self.gallery.search(probe, k)

    def category_of(self, subject_ref: str) -> str:
        for entry in self.entries:
            if entry.subject_ref == subject_ref:
                return entry.category
        raise KeyError(subject_ref)


def _model_dict(model_identity: Any) -> dict[str, str]:
    raw = model_identity.as_dict() if hasattr(model_identity, "as_dict") else dict(model_identity)
    return {str(k): str(v) for k, v in raw.items()}


def verify_package_signature(data: bytes, authority_pub: Ed25519PublicKey) -> None:
    """Check the magic, version and the authority's signature over the whole package (before any field is trusted)."""
    version = package_version(data)
    signed, signature = split_signature(data)
    try:
        verify(authority_pub, SIGNATURE_DOMAINS[version], signed, signature)
    except SignatureInvalid:
        raise PackageTampered(
            "watchlist package signature is not valid for the pinned authority key (altered, or not issued by the authority)",
            "do not use it; obtain the package again from the authority",
        ) from None


@dataclass(frozen=True)
class DeviceTrust:
    """What this device checks every package against: its own keys (the seal), the pinned authority
    and approvers (the signatures), the models it runs (a watchlist binds their identity) and, when
    the deployment record is also handed over as its own file, that record. Built once where the
    config is read, so the agent, a push, an install and a search all verify the same things."""

    device_keys: DeviceKeys
    authority_pub: Ed25519PublicKey
    model_identity: Any
    approver_pubs: Sequence[Ed25519PublicKey] = ()
    expected_deployment: SignedDeployment | None = None

    def load(self, package: bytes | Path | str, now: datetime) -> LoadedWatchlist:
        return load_watchlist(package, self.device_keys, self.authority_pub, self.model_identity, now, self.approver_pubs,
                              expected_deployment=self.expected_deployment)


def load_watchlist(
    package: bytes | Path | str,
    device_keys: DeviceKeys,
    authority_pub: Ed25519PublicKey,
    model_identity: Any,
    now: datetime,
    approver_pubs: Sequence[Ed25519PublicKey] = (),
    *,
    expected_deployment: SignedDeployment | None = None,
) -> LoadedWatchlist:
    """Verify and decrypt ``package`` for this device; raise a specific WatchlistRefused (or
    DeploymentRefused) subclass otherwise. ``expected_deployment``, when the deployment record is
    also pushed as its own file, must be the very record the package is bound to, validly signed by the authority."""
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware UTC datetime")
    data = _read(package)
    verify_package_signature(data, authority_pub)
    container = decode_container(data)
    header, version = container.header, container.version
    parse_time = parse_timestamp if version >= 2 else parse_utc  # v2: the one timestamp form only
    try:
        if header.get("format") != FORMAT_NAME or header.get("version") != version:
            raise ValueError("format/version fields disagree with the container")
        if header.get("dim") != EMBEDDING_DIM or header.get("dtype") != "float32" or header.get("cipher") != "AES-256-GCM":
            raise ValueError(f"dim/dtype/cipher are not those of format v{version}")
        expires = parse_time(header["expires"], "expires")
        not_before = parse_time(header["not_before"], "not_before")
        template_count, dim, entry_count = int(header["template_count"]), int(header["dim"]), int(header["entry_count"])
        signed_deployment = SignedDeployment.from_json(header["deployment"])
        package_model = {str(k): str(v) for k, v in dict(header["model"]).items()}
    except (KeyError, TypeError, ValueError, CanonicalJsonError, TimestampError, SecurityError) as exc:
        raise PackageTampered(f"watchlist header is invalid ({exc})", "ask the authority to rebuild the package") from None

    device_model = _model_dict(model_identity)
    if package_model != device_model:
        differing = sorted(k for k in set(package_model) | set(device_model) if package_model.get(k) != device_model.get(k))
        retired = explain_aligner_change(package_model.get("aligner", ""), device_model.get("aligner", ""))
        if retired is not None:
            raise ModelMismatch(
                f"watchlist cannot be matched here: {retired}, and templates from different aligners do not compare",
                "rebuild the watchlist from its reference images with this release (edge-agent watchlist build); the old package cannot be converted",
            )
        raise ModelMismatch(
            f"watchlist templates were made with different models ({', '.join(differing)} differ from this device's)",
            "rebuild the watchlist with the models this device runs, or install the matching models",
        )
    if now >= expires:
        raise WatchlistExpired(f"watchlist expired at {expires.isoformat()} (now {now.isoformat()})", "it must be destroyed; a new deployment needs a new watchlist")
    if now < not_before:
        raise WatchlistNotYetValid(f"watchlist is valid from {not_before.isoformat()} (now {now.isoformat()})", "wait for the deployment start, or check the device clock")
    if expected_deployment is not None:
        _check_pushed_deployment(expected_deployment, signed_deployment, authority_pub)
    record = authorise(signed_deployment, authority_pub, device_keys.device_id, now, approver_pubs, device_model)
    start = truncate_to_ms(record.start) if version >= 2 else record.start  # what the one timestamp form can carry
    if record.deployment_id != header.get("deployment_id") or expires > record.end or not_before != start:
        raise PackageTampered("watchlist header disagrees with its deployment record", "ask the authority to rebuild the package")

    sealed = container.seals.get(device_keys.device_id)
    if sealed is None:
        raise WrongDevice(
            f"watchlist was not issued to device {device_keys.device_id!r} (issued to: {', '.join(sorted(container.seals)) or 'nobody'})",
            "ask the authority to build a package for this device",
        )
    try:
        content_key = open_sealed(
            sealed, device_keys.sealing_key, SEAL_CONTEXTS[version], seal_aad(container.prefix, device_keys.device_id, version)
        )
    except SecurityError:
        raise WrongDevice(
            f"watchlist seal for {device_keys.device_id!r} does not open with this device's key",
            "the registry holds a different key for this device id; re-register the device or rebuild the package",
        ) from None
    entries, gallery = _open_payload(content_key, container, template_count, dim, entry_count)
    del container, data  # a package read from a file is freed here (a caller's bytes stay the caller's)
    trim_heap()  # what the load freed (2.4 MB for 10,000 entries) back to the kernel, not kept by malloc
    return LoadedWatchlist(
        gallery=gallery,
        entries=entries,
        deployment=record,
        expires_at=expires,
        not_before=not_before,
        version=version,
        package_id=str(header.get("package_id", "")),
        model=package_model,
        device_id=device_keys.device_id,
    )


#: Templates decrypted per step (64 KiB of plaintext for 128-value templates).
CHUNK_ROWS = 128


class _PlaintextStream:
    """The payload decrypted in order, a piece at a time, through one small scratch buffer
    (AES-GCM is a stream cipher with the tag checked after the last byte, by ``finish``)."""

    def __init__(self, key: bytes, payload: memoryview, aad: bytes, chunk: int) -> None:
        nonce, self._ciphertext, tag = bytes(payload[:NONCE_LEN]), payload[NONCE_LEN:-TAG_LEN], bytes(payload[-TAG_LEN:])
        self._decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
        self._decryptor.authenticate_additional_data(aad)
        self._pos = 0
        self._chunk = chunk
        self.scratch = bytearray(chunk + 15)  # update_into wants a block's room more than it writes

    @property
    def remaining(self) -> int:
        return len(self._ciphertext) - self._pos

    def read(self, n: int) -> memoryview:
        """The next ``n`` (at most ``chunk``) plaintext bytes: a view of the scratch buffer, valid until the next read."""
        if n > self._chunk:
            raise ValueError(f"read of {n} bytes exceeds the {self._chunk}-byte chunk")
        n = min(n, self.remaining)  # short: the caller's length check refuses it
        written = self._decryptor.update_into(self._ciphertext[self._pos : self._pos + n], self.scratch)
        if written != n:
            raise RuntimeError(f"AES-GCM returned {written} of {n} bytes")
        self._pos += n
        return memoryview(self.scratch)[:n]

    def read_into(self, out: memoryview) -> None:
        for start in range(0, len(out), self._chunk):
            piece = self.read(min(self._chunk, len(out) - start))
            out[start : start + len(piece)] = piece

    def finish(self) -> None:
        """Check the tag over every byte (the rest is decrypted into the scratch buffer first)."""
        while self.remaining:
            self.read(min(self._chunk, self.remaining))
        try:
            self._decryptor.finalize()
        except InvalidTag:
            raise PackageTampered("watchlist payload does not decrypt (altered)", "obtain the package again from the authority") from None

    def wipe(self) -> None:
        np.frombuffer(self.scratch, np.uint8).fill(0)


def _open_payload(
    content_key: bytes, container: Container, template_count: int, dim: int, entry_count: int
) -> tuple[tuple[DeviceEntry, ...], Gallery]:
    """Decrypt the payload straight into the gallery: the entries first, then each template to its
    row of the gallery's matrix (``Gallery.placement``) through a 64 KiB scratch buffer, so the
    whole plaintext never exists at once and the gallery copies nothing (issue 14: the device's
    peak RSS; before, the plaintext and the gallery's grouped copy of it were both held). Nothing
    is returned before the GCM tag has been checked over every byte (the package's signature,
    checked first, already covers them). The scratch buffer, the entries' plaintext and, when the
    package is refused, the templates decrypted so far are zeroed (policing.md 12: no template's
    plaintext is left for the allocator to hand out again)."""
    stream = _PlaintextStream(content_key, container.payload, container.prefix, CHUNK_ROWS * dim * 4)
    version = container.version
    templates: np.ndarray | None = None
    try:
        try:
            meta_len = decode_meta_length(stream.read(META_LEN_BYTES))
            check_template_bytes(stream.remaining - meta_len, template_count, dim)
            meta = bytearray(meta_len)
            try:
                stream.read_into(memoryview(meta))
                entries_json = decode_entries(meta)
            finally:
                np.frombuffer(meta, np.uint8).fill(0)
            try:
                # v1 entries carried the whole listing: it is checked, then all but what matching needs is dropped.
                entries = tuple(DeviceEntry.from_json(e) if version >= 2 else WatchlistEntry.from_json(e).device_entry() for e in entries_json)
            except ConfigError as exc:
                raise PackageTampered(f"watchlist entry is invalid ({exc.message})", "ask the authority to rebuild the package") from None
            del entries_json
            if len(entries) != entry_count or sum(e.templates for e in entries) != template_count:
                raise PackageTampered("watchlist entry counts disagree with the header", "ask the authority to rebuild the package")
        except PackageTampered:
            stream.finish()  # an altered payload is refused as such, before what it decrypts to
            raise
        refs = [e.subject_ref for e in entries for _ in range(e.templates)]
        rows = Gallery.placement(refs)
        templates = np.empty((template_count, dim), np.float32)
        for first in range(0, template_count, CHUNK_ROWS):
            count = min(CHUNK_ROWS, template_count - first)
            templates[rows[first : first + count]] = np.frombuffer(stream.read(count * dim * 4), TEMPLATE_DTYPE).reshape(count, dim)
        stream.finish()
        return entries, Gallery(templates, refs, placed=True)
    except BaseException:
        if templates is not None:
            templates.fill(0)
        raise
    finally:
        stream.wipe()


def _check_pushed_deployment(pushed: SignedDeployment, bound: SignedDeployment, authority_pub: Ed25519PublicKey) -> None:
    """A deployment record pushed as its own file is what operators and auditors read as the
    authority: it must carry a valid authority signature itself, not only bytes equal to the copy
    signed inside the package (issue 11: a corrupted signature was accepted)."""
    try:
        pushed.verify(authority_pub)
    except SecurityError as exc:
        raise DeploymentRefused(f"the separately pushed deployment record is refused: {exc.message}", exc.hint) from None
    if pushed.record_bytes != bound.record_bytes:
        raise DeploymentMismatch(
            "the watchlist is bound to a different deployment record than the one configured",
            "push the deployment record and the watchlist built for it together",
        )


def _read(package: bytes | Path | str) -> bytes:
    if isinstance(package, (bytes, bytearray, memoryview)):
        return bytes(package)
    path = Path(package)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"watchlist package {path} not found", "check the path") from None
