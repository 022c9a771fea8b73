"""The probe-face crop carried by an alert: a small JPEG sealed to the control room's X25519 key.

Sealing happens before the event is spooled, so the face is never on disk, at the broker or on
the wire in the clear. The event id is the AEAD associated data: a crop cannot be moved into
another event.
"""

from __future__ import annotations

import base64

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_agent.crypto.sealing import open_sealed, seal
from edge_agent.errors import ImageError, SecurityError

CROP_CONTEXT = b"alert-crop-v1"
MAX_CROP_BYTES = 256 * 1024


def crop_aad(event_id: str) -> bytes:
    """Associated data binding a crop to its event: the event id's ASCII text."""
    return event_id.encode("ascii")


def crop_face_jpeg(
    image_bgr: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = 0.25,
    max_side: int = 160,
    quality: int = 85,
) -> bytes:
    """JPEG of the face box grown by ``margin`` on each side, clipped to the frame, at most ``max_side`` px."""
    import cv2

    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        raise ImageError(f"face box {box} lies outside the {w}x{h} frame", "this is a bug in the detector output")
    face = image_bgr[top:bottom, left:right]
    scale = max_side / max(face.shape[:2])
    if scale < 1.0:
        face = cv2.resize(face, (max(1, round(face.shape[1] * scale)), max(1, round(face.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("could not JPEG-encode the face crop", "check the frame is BGR uint8")
    return buf.tobytes()


def seal_crop(jpeg: bytes, control_room: X25519PublicKey, event_id: str) -> str:
    """Seal a JPEG for the control room; returns the base64 text carried in the event."""
    if not jpeg.startswith(b"\xff\xd8") or len(jpeg) > MAX_CROP_BYTES:
        raise ImageError(f"crop is not a JPEG of at most {MAX_CROP_BYTES} bytes", "use crop_face_jpeg to make it")
    return base64.b64encode(seal(jpeg, control_room, context=CROP_CONTEXT, aad=crop_aad(event_id))).decode("ascii")


def open_crop(sealed: bytes, control_room: X25519PrivateKey, event_id: str) -> bytes:
    """Decrypt a crop; SecurityError if it was not sealed for this key and event, or is not a JPEG."""
    jpeg = open_sealed(sealed, control_room, context=CROP_CONTEXT, aad=crop_aad(event_id))
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.rstrip(b"\x00").endswith(b"\xff\xd9")):
        raise SecurityError(f"crop of event {event_id} decrypts but is not a JPEG", "the sending device is misbehaving; report it")
    return jpeg
