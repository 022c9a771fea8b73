"""Bad images give clear errors, not tracebacks, both in the library and through the CLI."""

from __future__ import annotations

import subprocess
import sys
import zlib

import pytest

from edge_agent.errors import ImageError
from edge_agent.vision.image_io import read_image


def _png_header(width: int, height: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "cannot be decoded"),
        (None, "cannot be decoded"),  # truncated JPEG, filled in below
        (_png_header(100_000, 100_000) + b"\x00" * 64, "pixel limit"),
    ],
    ids=["empty", "corrupt", "truncated", "huge"],
)
def test_bad_images_raise_image_error(tmp_path, fixtures_dir, content, message):
    if content is None:
        content = (fixtures_dir / "faces" / "obama_1.jpg").read_bytes()[:600]
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.jpg")


def test_cli_reports_a_corrupt_image_without_traceback(tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 garbage")
    result = subprocess.run([sys.executable, "-m", "edge_agent.cli.main", "detect", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error:" in result.stderr and "corrupt.jpg" in result.stderr
    assert "Traceback" not in result.stderr
