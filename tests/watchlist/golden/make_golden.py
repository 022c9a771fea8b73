"""Write the golden package of the current format version (only when a version is added, never to make a test pass).

    python tests/watchlist/golden/make_golden.py

v1.eawl was written by this script's format v1 predecessor and is kept as it is (v1 is read, not
written); this writes v<FORMAT_VERSION>.eawl with the same test-only keys (keys.json: raw private keys).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from watchlist_helpers import MODEL, START, make_entries, make_record, unit_templates  # noqa: E402

from edge_agent.deployment.record import SignedDeployment  # noqa: E402
from edge_agent.watchlist.format import FORMAT_VERSION  # noqa: E402
from edge_agent.watchlist.package import pack_watchlist  # noqa: E402


def raw(key) -> str:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()


def main() -> None:
    keys_file = HERE / "keys.json"
    if keys_file.exists():  # the keys the committed goldens were made with
        keys = json.loads(keys_file.read_text())
        authority = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["authority_ed25519"]))
        device = X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["device_x25519"]))
    else:
        authority = Ed25519PrivateKey.generate()
        device = X25519PrivateKey.generate()
    entries = make_entries(3, templates_each=2)
    package = pack_watchlist(
        SignedDeployment.sign(make_record(device_ids=("cam-01",)), authority),
        entries,
        unit_templates(6, seed=42),
        MODEL,
        {"cam-01": device.public_key()},
        authority,
        START - timedelta(hours=2),
    )
    (HERE / f"v{FORMAT_VERSION}.eawl").write_bytes(package)
    keys_file.write_text(json.dumps({"authority_ed25519": raw(authority), "device_id": "cam-01", "device_x25519": raw(device)}, indent=2) + "\n")
    print(f"wrote {len(package)} bytes")


if __name__ == "__main__":
    main()
