"""Encrypt, seal and sign a watchlist package (central side, format v2). No recognition here: templates in, bytes out.

The package carries each subject's ``DeviceEntry`` only (reference, category, template count); the
listing's other fields are for the central build record (build_record.py), never for the device.

Kept apart from build.py (photos -> templates) so the crypto can be tested and benchmarked with
any templates, and so the device side never imports the build tooling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge_agent.crypto.sealing import seal
from edge_agent.crypto.signing import sign
from edge_agent.deployment.record import SignedDeployment
from edge_agent.identifiers import check_device_id
from edge_agent.timestamps import format_timestamp
from edge_agent.watchlist.entry import WatchlistEntry
from edge_agent.watchlist.errors import WatchlistBuildError
from edge_agent.watchlist.format import (
    EMBEDDING_DIM,
    FORMAT_NAME,
    FORMAT_VERSION,
    NONCE_LEN,
    SEAL_CONTEXT,
    SIGNATURE_DOMAIN,
    encode_plaintext,
    encode_prefix,
    encode_unsigned,
    seal_aad,
)


def pack_watchlist(
    deployment: SignedDeployment,
    entries: Sequence[WatchlistEntry],
    templates: np.ndarray,
    model_identity: Mapping[str, str],
    recipients: Mapping[str, X25519PublicKey],
    authority_key: Ed25519PrivateKey,
    now: datetime,
    expires: datetime | None = None,
) -> bytes:
    """Return a signed v2 package. ``templates`` rows follow ``entries`` order (entry.templates rows each);
    of each entry only its ``device_entry()`` is packed."""
    record = deployment.verify(authority_key.public_key())
    expires = expires or record.end
    if expires > record.end:
        raise WatchlistBuildError(
            f"watchlist expiry {format_timestamp(expires)} is after the deployment end {format_timestamp(record.end)}",
            "a watchlist must expire no later than its deployment (policing.md 4)",
        )
    if now >= expires:
        raise WatchlistBuildError(f"the deployment {record.deployment_id} has already ended", "authorise a new deployment first")
    if not recipients:
        raise WatchlistBuildError("no target device given", "name at least one device with --for-device")
    for device_id in recipients:
        check_device_id(device_id)
        if device_id not in record.device_ids:
            raise WatchlistBuildError(
                f"device {device_id!r} is not named in deployment {record.deployment_id}",
                f"target only the deployment's devices: {', '.join(record.device_ids)}",
            )
    if len(entries) > record.watchlist_cap:
        raise WatchlistBuildError(
            f"{len(entries)} subjects exceed deployment {record.deployment_id}'s watchlist cap of {record.watchlist_cap}",
            "reduce the watchlist or have a deployment authorised with a larger cap (policing.md 7)",
        )
    refs = [e.subject_ref for e in entries]
    if len(set(refs)) != len(refs):
        raise WatchlistBuildError("a subject reference appears twice", "merge the rows: several images go in one row, ';'-separated")
    templates = np.asarray(templates, dtype=np.float32)
    if templates.ndim != 2 or templates.shape[1] != EMBEDDING_DIM or len(templates) != sum(e.templates for e in entries):
        raise WatchlistBuildError(
            f"templates shape {templates.shape} does not match {sum(e.templates for e in entries)} templates of {EMBEDDING_DIM} values",
            "this is a bug in the caller",
        )
    if not np.all(np.isfinite(templates)) or not np.allclose(np.linalg.norm(templates, axis=1), 1.0, atol=1e-3):
        raise WatchlistBuildError("templates are not finite unit vectors", "templates must come from the recognition core")

    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "package_id": os.urandom(16).hex(),
        "deployment_id": record.deployment_id,
        "deployment": deployment.to_json(),
        "model": {k: str(v) for k, v in dict(model_identity).items()},
        "created": format_timestamp(now),
        "not_before": format_timestamp(record.start),
        "expires": format_timestamp(expires),
        "entry_count": len(entries),
        "template_count": int(len(templates)),
        "dim": EMBEDDING_DIM,
        "dtype": "float32",
        "cipher": "AES-256-GCM",
    }
    prefix = encode_prefix(header)
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_LEN)
    plaintext = encode_plaintext([e.device_entry().to_json() for e in entries], templates)
    payload = nonce + AESGCM(content_key).encrypt(nonce, plaintext, prefix)
    seals = {d: seal(content_key, pub, SEAL_CONTEXT, seal_aad(prefix, d)) for d, pub in recipients.items()}
    unsigned = encode_unsigned(prefix, seals, payload)
    return unsigned + sign(authority_key, SIGNATURE_DOMAIN, unsigned)
