"""Image dimensions read from the file's header alone, for every format OpenCV can decode here.

Why: ``cv2.imdecode`` allocates the whole pixel buffer the header claims before it reads a single
pixel, so a 60-byte file claiming 60,000 x 60,000 pixels exhausts a Pi's memory (a decompression
bomb). ``image_io`` checks these dimensions against its limit *before* decoding, and refuses any
file whose format is not listed here, so no format can slip past the check (issue 10.18).

Formats: JPEG, PNG, BMP, GIF, WebP, TIFF (every page), JPEG 2000 (JP2 and raw codestream), the
Netpbm family (PBM/PGM/PPM/PAM/PFM), Sun raster, Radiance HDR and AVIF/HEIF (every ``ispe``).
"""

from __future__ import annotations

from typing import Literal
import re
from collections.abc import Callable

Dimensions = tuple[int, int]  # width, height; a file with several images gives the largest

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_MAX_TIFF_PAGES = 256
ByteOrder = Literal["little", "big"]


def _u16(data: bytes, offset: int, order: ByteOrder = "big") -> int:
    return int.from_bytes(data[offset : offset + 2], order)


def _u32(data: bytes, offset: int, order: ByteOrder = "big") -> int:
    return int.from_bytes(data[offset : offset + 4], order)


def _need(data: bytes, length: int) -> None:
    if len(data) < length:
        raise ValueError("header truncated")


def _jpeg(data: bytes) -> Dimensions:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE_MARKERS:
            i += 2
            continue
        if marker in _SOF_MARKERS:
            _need(data, i + 9)
            return _u16(data, i + 7), _u16(data, i + 5)
        i += 2 + _u16(data, i + 2)
    raise ValueError("no JPEG frame header")


_PNG_MAX_CHUNK = (1 << 31) - 1  # the PNG specification's limit on a chunk's length


def _png(data: bytes) -> Dimensions:
    _need(data, 24)
    if data[12:16] != b"IHDR":
        raise ValueError("PNG without IHDR")
    # OpenCV's PNG reader allocates each chunk's declared length before reading it: a 530-byte
    # file declaring a 4 GB IDAT took 4 GB (fuzzer finding, image_header). Every chunk must fit.
    pos = 8
    while pos + 8 <= len(data):
        length = _u32(data, pos)
        if length > _PNG_MAX_CHUNK or pos + 12 + length > len(data):
            raise ValueError("PNG chunk runs past the end of the file")
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + length
    return _u32(data, 16), _u32(data, 20)


def _bmp(data: bytes) -> Dimensions:
    _need(data, 26)
    if _u32(data, 14, "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return _u16(data, 18, "little"), _u16(data, 20, "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)  # negative: stored top-down
    return abs(width), abs(height)


def _gif(data: bytes) -> Dimensions:
    """The logical screen, which is the canvas OpenCV allocates; frames are drawn inside it."""
    _need(data, 10)
    return _u16(data, 6, "little"), _u16(data, 8, "little")


def _webp(data: bytes) -> Dimensions:
    _need(data, 30)
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one after the 0x2f signature
        bits = _u32(data, 21, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy key frame: 14-bit sizes after the 3-byte tag and start code
        return _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
    raise ValueError("unknown WebP chunk")


def _tiff(data: bytes) -> Dimensions:
    """The largest page: every image file directory in the chain is read (OpenCV can decode any)."""
    order: ByteOrder = "little" if data[:2] == b"II" else "big"
    big = _u16(data, 2, order) == 43
    offset = int.from_bytes(data[8:16], order) if big else _u32(data, 4, order)
    count_size, entry_size, value_at = (8, 20, 12) if big else (2, 12, 8)
    best: Dimensions | None = None
    seen: set[int] = set()
    while offset and len(seen) < _MAX_TIFF_PAGES:
        if offset in seen:
            raise ValueError("TIFF directory loop")
        seen.add(offset)
        _need(data, offset + count_size)
        entries = int.from_bytes(data[offset : offset + count_size], order)
        start = offset + count_size
        _need(data, start + entries * entry_size + (8 if big else 4))
        size = {256: 0, 257: 0}
        for k in range(entries):
            entry = start + k * entry_size
            tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
            if tag in size:
                width = {3: 2, 4: 4, 16: 8}.get(kind)
                if width is None:
                    raise ValueError("TIFF size of an unexpected type")
                size[tag] = int.from_bytes(data[entry + value_at : entry + value_at + width], order)
        page = (size[256], size[257])
        best = page if best is None or page[0] * page[1] > best[0] * best[1] else best
        next_at = start + entries * entry_size
        offset = int.from_bytes(data[next_at : next_at + (8 if big else 4)], order)
    if best is None:
        raise ValueError("TIFF without an image directory")
    return best


def _j2k_codestream(data: bytes, at: int = 0) -> Dimensions:
    """SIZ marker: image size minus the image offset."""
    _need(data, at + 24)
    if data[at : at + 4] != b"\xff\x4f\xff\x51":
        raise ValueError("JPEG 2000 codestream without SIZ")
    x, y, x0, y0 = (_u32(data, at + k) for k in (8, 12, 16, 20))
    return max(0, x - x0), max(0, y - y0)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """ISO base-media boxes (JP2, HEIF, AVIF) between ``start`` and ``end``: (type, content start, content end)."""
    found = []
    i = start
    while i + 8 <= end:
        size, kind, header = _u32(data, i), data[i + 4 : i + 8], 8
        if size == 1:
            _need(data, i + 16)
            size, header = int.from_bytes(data[i + 8 : i + 16], "big"), 16
        elif size == 0:
            size = end - i
        if size < header:
            raise ValueError("box smaller than its header")
        found.append((kind, i + header, min(i + size, end)))
        i += size
    return found


def _jp2(data: bytes) -> Dimensions:
    """The ``ihdr`` box and the codestream's own SIZ, the larger of the two (they should agree)."""
    sizes = []
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == b"jp2h":
            for sub, s, _ in _boxes(data, start, end):
                if sub == b"ihdr":
                    _need(data, s + 8)
                    sizes.append((_u32(data, s + 4), _u32(data, s)))
        elif kind == b"jp2c":
            sizes.append(_j2k_codestream(data, start))
    if not sizes:
        raise ValueError("JP2 without an image header")
    return max(sizes, key=lambda d: d[0] * d[1])


_CONTAINER_BOXES = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # box type -> bytes before its children


def _heif(data: bytes) -> Dimensions:
    """Every image spatial extent (``ispe``) property of an AVIF/HEIF file: the largest."""
    sizes: list[Dimensions] = []

    def walk(start: int, end: int) -> None:
        for kind, s, e in _boxes(data, start, end):
            if kind == b"ispe":
                _need(data, s + 12)
                sizes.append((_u32(data, s + 4), _u32(data, s + 8)))
            elif kind in _CONTAINER_BOXES:
                walk(s + _CONTAINER_BOXES[kind], e)

    walk(0, len(data))
    if not sizes:
        raise ValueError("AVIF/HEIF without an image size (an image sequence?)")
    return max(sizes, key=lambda d: d[0] * d[1])


_NUMBER = rb"(?:\s|#[^\n]*\n)+(\d+)"


def _netpbm(data: bytes) -> Dimensions:
    head = data[:1024]
    if head[:2] == b"P7":  # PAM: WIDTH / HEIGHT lines before ENDHDR
        width, height = re.search(rb"\nWIDTH\s+(\d+)", head), re.search(rb"\nHEIGHT\s+(\d+)", head)
        if not width or not height:
            raise ValueError("PAM header without WIDTH/HEIGHT")
        return int(width.group(1)), int(height.group(1))
    match = re.match(rb"P[1-6Ff]" + _NUMBER + _NUMBER, head)
    if not match:
        raise ValueError("Netpbm header without sizes")
    return int(match.group(1)), int(match.group(2))


def _sun_raster(data: bytes) -> Dimensions:
    _need(data, 12)
    return _u32(data, 4), _u32(data, 8)


def _radiance(data: bytes) -> Dimensions:
    """Header lines, a blank line, then the resolution string, e.g. ``-Y 480 +X 640``."""
    match = re.search(rb"\n\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)\n", data[:8192])
    if not match:
        raise ValueError("Radiance header without a resolution line")
    first, second = int(match.group(3)), int(match.group(6))
    return (second, first) if match.group(2) == b"Y" else (first, second)


_PARSERS: list[tuple[Callable[[bytes], bool], Callable[[bytes], Dimensions]]] = [
    (lambda d: d[:2] == b"\xff\xd8", _jpeg),
    (lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda d: d[:2] == b"BM", _bmp),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda d: d[:4] == b"\xff\x4f\xff\x51", _j2k_codestream),
    (lambda d: d[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2),
    (lambda d: d[4:8] == b"ftyp", _heif),
    (lambda d: re.match(rb"P[1-7Ff]\s", d[:3]) is not None, _netpbm),
    (lambda d: d[:4] == b"\x59\xa6\x6a\x95", _sun_raster),
    (lambda d: d[:10] == b"#?RADIANCE" or d[:6] == b"#?RGBE", _radiance),
]


def header_dimensions(data: bytes) -> Dimensions | None:
    """(width, height) the file claims, or None when its format is unknown or its header unreadable
    (the caller then refuses it: an image that cannot be measured is never decoded)."""
    for matches, parse in _PARSERS:
        if matches(data):
            try:
                return parse(data)
            except (ValueError, IndexError):
                return None
    return None
