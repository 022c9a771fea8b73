"""Watchlist package formats v2 (written) and v1 (read only): byte layout only (docs/formats/watchlist.md).

    magic "EAWL" (4) | version (1) = 0x02 (0x01: legacy)
    header_len (u32 BE) | header: JSON (v2: RFC 8785 JCS; v1: the old canonical JSON)
    seal_count (u16 BE) | per seal: id_len (u8) | device id (ASCII) | seal_len (u16 BE) | sealed content key
    payload_len (u64 BE) | payload: nonce (12) | AES-256-GCM ciphertext + tag (16)
    signature (64): Ed25519 by the authority over every byte before it

The signature sits at a fixed place (the last 64 bytes) so it can be checked before anything
else is parsed. The "prefix" (magic..header) is the AES-GCM AAD of the payload and, hashed, part
of each seal's AAD: a seal or ciphertext cannot be moved to another package.
Plaintext: meta_len (u32 BE) | meta: JSON {"entries": [...]} | templates float32 little-endian.

The versions share the layout. What v2 changes: the entries carry only subject_ref, category and
templates (issue 10.6: the listing's image source, legal basis, dates and under-18 justification
stay in the central build record); JSON is JCS; timestamps use the one form (edge_agent.timestamps);
the signing domain and the seal context and AAD name version 2, so no v1 signature or seal can be
taken for a v2 one.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.crypto.canonical import CanonicalJsonError, canonical_json, is_jcs, jcs
from edge_agent.crypto.signing import WATCHLIST_V1, WATCHLIST_V2
from edge_agent.safe_load import json_loads
from edge_agent.watchlist.errors import NotAWatchlist, PackageTampered, UnknownFormatVersion

MAGIC = b"EAWL"
FORMAT_VERSION = 2  # what pack_watchlist writes
READABLE_VERSIONS = (1, 2)
FORMAT_NAME = "edge-agent-watchlist"
SIGNATURE_LEN = 64
NONCE_LEN = 12
TAG_LEN = 16
#: Per version: the seal's HKDF context, the seal AAD's domain and the authority's signing domain.
SEAL_CONTEXTS = {1: b"watchlist-v1", 2: b"watchlist-v2"}
SEAL_AAD_DOMAINS = {1: b"edge-agent watchlist v1 seal\x00", 2: b"edge-agent watchlist v2 seal\x00"}
SIGNATURE_DOMAINS = {1: WATCHLIST_V1, 2: WATCHLIST_V2}
SEAL_CONTEXT = SEAL_CONTEXTS[FORMAT_VERSION]
SIGNATURE_DOMAIN = SIGNATURE_DOMAINS[FORMAT_VERSION]
TEMPLATE_DTYPE = "<f4"
EMBEDDING_DIM = 128  # SFace
HEADER_FIELDS = (
    "format",
    "version",
    "package_id",
    "deployment_id",
    "deployment",
    "model",
    "created",
    "not_before",
    "expires",
    "entry_count",
    "template_count",
    "dim",
    "dtype",
    "cipher",
)
MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class Container:
    """A package split into its regions (nothing decrypted, nothing trusted yet)."""

    version: int
    prefix: bytes  # magic .. header, the payload AAD
    header: dict[str, Any]
    seals: dict[str, bytes]
    payload: memoryview  # nonce | ciphertext+tag (views into the package: each copy of a 10k package is 6 MB)
    signed: memoryview  # every byte the signature covers
    signature: bytes


def is_canonical(obj: Any, data: bytes, version: int) -> bool:
    """Whether ``data`` is the one serialisation of ``obj`` for ``version`` (False, not an error,
    when the parsed value cannot be encoded at all)."""
    if version >= 2:
        return is_jcs(data, obj)
    try:
        return canonical_json(obj) == data
    except CanonicalJsonError:
        return False


def canonical(obj: Any, version: int) -> bytes:
    """The one serialisation of a header or entry list for ``version`` (v2: JCS; v1: legacy canonical JSON)."""
    return jcs(obj) if version >= 2 else canonical_json(obj)


def seal_aad(prefix: bytes, device_id: str, version: int = FORMAT_VERSION) -> bytes:
    return SEAL_AAD_DOMAINS[version] + device_id.encode("ascii") + b"\x00" + hashlib.sha256(prefix).digest()


def encode_prefix(header: dict[str, Any]) -> bytes:
    """Magic, version and header of a new (v2) package."""
    missing = [f for f in HEADER_FIELDS if f not in header]
    if missing or set(header) != set(HEADER_FIELDS):
        raise ValueError(f"watchlist header fields wrong: missing {missing}, extra {sorted(set(header) - set(HEADER_FIELDS))}")
    body = jcs(header)
    return MAGIC + bytes([FORMAT_VERSION]) + struct.pack(">I", len(body)) + body


def encode_unsigned(prefix: bytes, seals: dict[str, bytes], payload: bytes) -> bytes:
    parts = [prefix, struct.pack(">H", len(seals))]
    for device_id in sorted(seals):
        ident = device_id.encode("ascii")
        parts += [struct.pack(">B", len(ident)), ident, struct.pack(">H", len(seals[device_id])), seals[device_id]]
    parts += [struct.pack(">Q", len(payload)), payload]
    return b"".join(parts)


def check_magic_and_version(data: bytes) -> None:
    """Cheap checks that give a specific message before the signature is tried."""
    if len(data) < len(MAGIC) + 1 or data[: len(MAGIC)] != MAGIC:
        raise NotAWatchlist("this is not an edge-agent watchlist package (bad magic)", "check the file: expected a .eawl package from the authority")
    if data[len(MAGIC)] not in READABLE_VERSIONS:
        raise UnknownFormatVersion(
            f"watchlist package format version {data[len(MAGIC)]} is not supported "
            f"(this edge-agent reads versions {', '.join(map(str, READABLE_VERSIONS))})",
            f"upgrade edge-agent, or ask the authority for a version {FORMAT_VERSION} package",
        )


def package_version(data: bytes) -> int:
    """The format version byte (after ``check_magic_and_version``)."""
    check_magic_and_version(data)
    return data[len(MAGIC)]


def split_signature(data: bytes) -> tuple[memoryview, bytes]:
    """(a view of the signed bytes, the signature): a slice would copy the whole package."""
    if len(data) < len(MAGIC) + 1 + 4 + 2 + 8 + SIGNATURE_LEN:
        raise PackageTampered("watchlist package is truncated", "copy the package again from the authority")
    return memoryview(data)[:-SIGNATURE_LEN], bytes(data[-SIGNATURE_LEN:])


def decode_container(data: bytes) -> Container:
    """Split a package into regions; any inconsistency is PackageTampered. Call after the signature check."""
    version = package_version(data)
    signed, signature = split_signature(data)
    view = signed
    pos = len(MAGIC) + 1
    try:
        (header_len,) = struct.unpack_from(">I", view, pos)
        pos += 4
        if header_len > MAX_HEADER or pos + header_len > len(view):
            raise ValueError("header length out of range")
        header_bytes = bytes(view[pos : pos + header_len])
        pos += header_len
        prefix = bytes(view[:pos])
        header = json_loads(header_bytes.decode("utf-8"))
        if not isinstance(header, dict) or not is_canonical(header, header_bytes, version):
            raise ValueError("header is not canonical JSON")
        (count,) = struct.unpack_from(">H", view, pos)
        pos += 2
        seals: dict[str, bytes] = {}
        for _ in range(count):
            (id_len,) = struct.unpack_from(">B", view, pos)
            pos += 1
            device_id = bytes(view[pos : pos + id_len]).decode("ascii")
            pos += id_len
            (seal_len,) = struct.unpack_from(">H", view, pos)
            pos += 2
            if pos + seal_len > len(view) or device_id in seals:
                raise ValueError("seal out of range or repeated")
            seals[device_id] = bytes(view[pos : pos + seal_len])
            pos += seal_len
        (payload_len,) = struct.unpack_from(">Q", view, pos)
        pos += 8
        if pos + payload_len != len(view) or payload_len < NONCE_LEN + TAG_LEN:
            raise ValueError("payload length does not match the package size")
        payload = view[pos:]
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise PackageTampered(f"watchlist package structure is corrupt ({exc})", "copy the package again from the authority") from None
    return Container(version, prefix, header, seals, payload, signed, signature)


def encode_plaintext(entries_json: list[dict[str, Any]], templates: np.ndarray) -> bytes:
    meta = jcs({"entries": entries_json})
    body = np.ascontiguousarray(templates, dtype=TEMPLATE_DTYPE).tobytes()
    return struct.pack(">I", len(meta)) + meta + body


META_LEN_BYTES = 4  # the plaintext's meta_len (u32 BE)


def decode_meta_length(head: bytes | bytearray | memoryview) -> int:
    """meta_len from the plaintext's first four bytes."""
    if len(head) != META_LEN_BYTES:
        raise PackageTampered("watchlist payload metadata is corrupt (shorter than its length field)", "ask the authority to rebuild the package")
    return int(struct.unpack(">I", head)[0])


def decode_entries(meta: bytes | bytearray | memoryview) -> list[Any]:
    """The entries list of the plaintext's meta JSON (decoded in place, not sliced first)."""
    try:
        doc = json_loads(str(meta, "utf-8"))
        entries = doc["entries"]
        if not isinstance(entries, list):
            raise ValueError("entries is not a list")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise PackageTampered(f"watchlist payload metadata is corrupt ({exc})", "ask the authority to rebuild the package") from None
    return entries


def check_template_bytes(size: int, template_count: int, dim: int) -> None:
    """The plaintext after the meta JSON is exactly the header's templates, float32 little-endian."""
    if size != template_count * dim * 4:
        raise PackageTampered(
            f"watchlist payload holds {size} template bytes, header says {template_count}x{dim} float32",
            "ask the authority to rebuild the package",
        )
