"""An independent verifier of edge-agent's bytes, written from docs/formats/ alone.

It uses PyNaCl (Ed25519, X25519) and pycryptodome (HKDF-SHA256, AES-256-GCM, PEM keys) and its
own RFC 8785 encoder, and never imports ``edge_agent`` or ``cryptography``: if this module ever
needs our code to verify something, the documentation is incomplete (issue 16).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.PublicKey import ECC


class Refused(Exception):
    """The bytes do not verify; ``reason`` names the documented rule they break."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --- RFC 8785 (JSON Canonicalization Scheme), from the RFC's text ------------------------------


def _jcs_number(value: float | int) -> str:
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise ValueError("integer outside the I-JSON range")
        return str(value)
    if not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # shortest round-trip digits (as ECMAScript's Number::toString picks them), then its layout
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole.lstrip("0")) + (int(exponent) if exponent else 0)
    if not whole.lstrip("0"):  # 0.000ddd
        n = -(len(frac) - len(frac.lstrip("0"))) + (int(exponent) if exponent else 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


def _jcs_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code, f"\\u{code:04x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _jcs_number(value)
    if isinstance(value, str):
        return _jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code units
        return "{" + ",".join(_jcs_string(k) + ":" + _jcs(value[k]) for k in keys) + "}"
    raise TypeError(f"not JSON data: {type(value).__name__}")


def jcs(value: Any) -> bytes:
    return _jcs(value).encode("utf-8")


def python_canonical(value: Any) -> bytes:
    """The version-1 encoding the docs define as Python's: sorted keys, no whitespace, raw UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def strict_json(data: bytes) -> Any:
    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise Refused("duplicate_key", k)
            out[k] = v
        return out

    def constant(name):
        raise Refused("malformed", f"JSON constant {name}")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused("malformed", str(exc)) from None


# --- primitives as the docs combine them ------------------------------------------------------


def ed25519_verify(public_raw: bytes, message: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_raw).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise Refused("bad_signature") from None


def b64(text: str) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise Refused("malformed", "base64 not in its canonical spelling")
    return raw


def open_sealed(blob: bytes, recipient_private_raw: bytes, context: bytes, aad: bytes) -> bytes:
    """docs/formats/sealing.md: 0x01 | E | N | AES-256-GCM(K, N, P, aad) with K = HKDF-SHA256(X25519(r, E), zero salt, info)."""
    if len(blob) < 61 or blob[0] != 1:
        raise Refused("bad_seal", "not a version 1 sealed blob")
    eph, nonce, body = blob[1:33], blob[33:45], blob[45:]
    recipient_public = nacl.bindings.crypto_scalarmult_base(recipient_private_raw)
    shared = nacl.bindings.crypto_scalarmult(recipient_private_raw, eph)
    info = b"edge-agent seal v1|" + context + b"|" + eph + recipient_public
    key = HKDF(shared, 32, b"\x00" * 32, SHA256, context=info)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(aad)
    try:
        return cipher.decrypt_and_verify(body[:-16], body[-16:])
    except ValueError:
        raise Refused("bad_seal", "tag does not verify") from None


def pem_ed25519_public(pem: str) -> bytes:
    return ECC.import_key(pem).export_key(format="raw")


def pem_x25519_private(pem: str) -> bytes:
    return bytes(ECC.import_key(pem).seed)


# --- formats ----------------------------------------------------------------------------------

ALERT_V2_DOMAIN = b"edge-agent alert v2\x00"


def verify_alert(payload: bytes, device_public_raw: bytes) -> dict:
    """events.md: v2 must be exactly JCS and signed under the alert domain; v1 unsigned-domain over Python's canonical form."""
    doc = strict_json(payload)
    if not isinstance(doc, dict) or "signature" not in doc:
        raise Refused("malformed", "not an alert object")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    signature = b64(doc["signature"])
    if doc.get("schema") == "lfr.alert/2":
        if jcs(doc) != payload:
            raise Refused("non_canonical")
        ed25519_verify(device_public_raw, ALERT_V2_DOMAIN + jcs(unsigned), signature)
    elif doc.get("schema") == "lfr.alert/1":
        ed25519_verify(device_public_raw, python_canonical(unsigned), signature)
    else:
        raise Refused("schema_invalid", str(doc.get("schema")))
    return doc


def open_crop(alert: dict, control_room_private_raw: bytes) -> bytes:
    jpeg = open_sealed(b64(alert["crop"]), control_room_private_raw, b"alert-crop-v1", alert["event_id"].encode("ascii"))
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.rstrip(b"\x00").endswith(b"\xff\xd9")):
        raise Refused("crop_unreadable", "not a JPEG")
    return jpeg


def verify_control_room_message(payload: bytes, control_room_public_raw: bytes) -> dict:
    """receipts.md: JCS, signed under the receipt or adjudication domain."""
    doc = strict_json(payload)
    domains = {"lfr.receipt/1": b"edge-agent receipt v1\x00", "lfr.adjudication/1": b"edge-agent adjudication v1\x00"}
    if not isinstance(doc, dict) or doc.get("schema") not in domains:
        raise Refused("schema_invalid")
    if jcs(doc) != payload:
        raise Refused("non_canonical")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    ed25519_verify(control_room_public_raw, domains[doc["schema"]] + jcs(unsigned), b64(doc["signature"]))
    return doc


def verify_audit_log(data: bytes, device_public_raw: bytes) -> int:
    """audit.md: each line canonical for its version, chained by SHA-256, checkpoints signed; returns the record count."""
    prev, version, count = "0" * 64, 1, 0
    lines = data.split(b"\n")
    if lines[-1] != b"":
        raise Refused("torn")
    for index, raw in enumerate(lines[:-1]):
        doc = strict_json(raw)
        v = doc.get("v")
        if v not in (1, 2) or v < version:
            raise Refused("version", f"line {index + 1}")
        version = v
        encode = jcs if v == 2 else python_canonical
        if encode(doc) != raw:
            raise Refused("non_canonical", f"line {index + 1}")
        if doc["seq"] != index or doc["prev"] != prev:
            raise Refused("chain", f"line {index + 1}")
        body = {k: doc[k] for k in ("v", "seq", "time", "actor", "kind", "details", "prev")}
        if hashlib.sha256(encode(body)).hexdigest() != doc["hash"]:
            raise Refused("edited", f"line {index + 1}")
        if doc["kind"] == "checkpoint":
            ed25519_verify(device_public_raw, b"edge-agent audit checkpoint v1\x00" + bytes.fromhex(doc["hash"]), b64(doc["signature"]))
        elif "signature" in doc:
            raise Refused("signature_on_record", f"line {index + 1}")
        prev = doc["hash"]
        count += 1
    return count


def open_watchlist(package: bytes, authority_public_raw: bytes, device_id: str, device_private_raw: bytes) -> tuple[dict, list[dict], int]:
    """watchlist.md (v2, and v1): signature over the domain and every byte before the last 64, then
    the device's seal, then the payload. Returns (header, entries, number of template bytes)."""
    if package[:4] != b"EAWL" or package[4] not in (1, 2):
        raise Refused("magic")
    version = package[4]
    tag = b"v%d" % version  # v2 and v1 differ only in these names (watchlist.md)
    ed25519_verify(authority_public_raw, b"edge-agent watchlist " + tag + b"\x00" + package[:-64], package[-64:])
    pos = 5
    (header_len,) = struct.unpack_from(">I", package, pos)
    pos += 4
    header_bytes = package[pos : pos + header_len]
    header = strict_json(header_bytes)
    if version == 2 and jcs(header) != header_bytes:
        raise Refused("non_canonical", "watchlist v2 header")
    pos += header_len
    prefix = package[:pos]
    if header.get("version") != version:
        raise Refused("version")
    (count,) = struct.unpack_from(">H", package, pos)
    pos += 2
    seals = {}
    for _ in range(count):
        id_len = package[pos]
        pos += 1
        ident = package[pos : pos + id_len].decode("ascii")
        pos += id_len
        (seal_len,) = struct.unpack_from(">H", package, pos)
        pos += 2
        seals[ident] = package[pos : pos + seal_len]
        pos += seal_len
    (payload_len,) = struct.unpack_from(">Q", package, pos)
    pos += 8
    payload = package[pos : pos + payload_len]
    if pos + payload_len != len(package) - 64:
        raise Refused("layout")
    aad = b"edge-agent watchlist " + tag + b" seal\x00" + device_id.encode("ascii") + b"\x00" + hashlib.sha256(prefix).digest()
    content_key = open_sealed(seals[device_id], device_private_raw, b"watchlist-" + tag, aad)
    cipher = AES.new(content_key, AES.MODE_GCM, nonce=payload[:12])
    cipher.update(prefix)
    try:
        plaintext = cipher.decrypt_and_verify(payload[12:-16], payload[-16:])
    except ValueError:
        raise Refused("payload") from None
    (meta_len,) = struct.unpack_from(">I", plaintext, 0)
    meta = strict_json(plaintext[4 : 4 + meta_len])
    return header, meta["entries"], len(plaintext) - 4 - meta_len


# deployment.md: the record version picks the encoding, the domains and the signed-file version
DEPLOYMENT_DOMAINS = {
    1: (b"edge-agent deployment v1\x00", b"edge-agent threshold-approval v1\x00"),
    2: (b"edge-agent deployment v1\x00", b"edge-agent threshold-approval v1\x00"),
    3: (b"edge-agent deployment v3\x00", b"edge-agent threshold-approval v3\x00"),
}
SIGNED_FILE_VERSION = {1: 1, 2: 1, 3: 2}
SIGNED_FILE_FIELDS = {"format", "version", "record", "authority_signature", "approvals"}
ONE_TIMESTAMP_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def verify_deployment(signed: bytes | dict, authority_public_raw: bytes, approver_publics: tuple[bytes, ...] = ()) -> tuple[dict, bool]:
    """deployment.md: a signed-deployment file (bytes) or the object a watchlist header embeds.
    Returns (record, whether a pinned approver other than the authority approved it)."""
    if isinstance(signed, bytes):
        doc = strict_json(signed)
        if isinstance(doc, dict) and doc.get("version") == 2 and jcs(doc) != signed.removesuffix(b"\n"):
            raise Refused("non_canonical", "signed-file version 2")
    else:
        doc = signed
    if not isinstance(doc, dict) or doc.get("format") != "edge-agent-signed-deployment" or doc.get("version") not in (1, 2):
        raise Refused("malformed", "not a signed deployment")
    if doc["version"] == 2 and (set(doc) != SIGNED_FILE_FIELDS or not all(isinstance(a, dict) and set(a) == {"public_key", "signature"} for a in doc["approvals"])):
        raise Refused("malformed", "signed-file version 2 members")
    record_bytes = b64(doc["record"])
    record = strict_json(record_bytes)
    version = record.get("version") if isinstance(record, dict) else None
    if version not in DEPLOYMENT_DOMAINS or SIGNED_FILE_VERSION[version] != doc["version"]:
        raise Refused("version_mismatch", f"signed-file {doc['version']} with record {version!r}")
    authority_domain, approval_domain = DEPLOYMENT_DOMAINS[version]
    ed25519_verify(authority_public_raw, authority_domain + record_bytes, b64(doc["authority_signature"]))
    if (jcs if version == 3 else python_canonical)(record) != record_bytes:
        raise Refused("non_canonical", f"record version {version}")
    if record.get("format") != "edge-agent-deployment":
        raise Refused("malformed", "not a deployment record")
    if version == 3 and not all(isinstance(record.get(k), str) and ONE_TIMESTAMP_FORM.fullmatch(record[k]) for k in ("start", "end")):
        raise Refused("timestamp_form", "start/end")
    approved = False
    for approval in doc.get("approvals", []):
        key = b64(approval["public_key"])
        if key in approver_publics and key != authority_public_raw:
            try:
                ed25519_verify(key, approval_domain + record_bytes, b64(approval["signature"]))
                approved = True
            except Refused:
                pass
    return record, approved


def read_calibration_report(data: bytes) -> tuple[dict, str]:
    """calibration.md: version 2 is exactly jcs(report) + LF; returns (report, report_sha256)."""
    doc = strict_json(data)
    if not isinstance(doc, dict) or doc.get("format") != "edge-agent-calibration" or doc.get("version") not in (1, 2):
        raise Refused("malformed", "not a calibration report")
    if doc["version"] == 2 and jcs(doc) + b"\n" != data:
        raise Refused("non_canonical", "calibration report version 2")
    return doc, hashlib.sha256(data).hexdigest()
