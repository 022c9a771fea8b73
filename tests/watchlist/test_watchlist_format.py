"""Pins watchlist format v1: a committed package still decodes; the header and entry fields match the doc."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from watchlist_helpers import DURING, MODEL, unit_templates

from edge_agent.identity.keys import DeviceKeys
from edge_agent.watchlist.entry import CATEGORIES, ENTRY_FIELDS
from edge_agent.watchlist.format import HEADER_FIELDS, MAGIC, SEAL_CONTEXT, decode_container
from edge_agent.watchlist.loader import load_watchlist

GOLDEN = Path(__file__).resolve().parent / "golden"
DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "watchlist.md"


@pytest.fixture(scope="module")
def golden():
    keys = json.loads((GOLDEN / "keys.json").read_text())
    authority = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["authority_ed25519"]))
    device = DeviceKeys(keys["device_id"], Ed25519PrivateKey.generate(), X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["device_x25519"])))
    return (GOLDEN / "v1.eawl").read_bytes(), authority.public_key(), device


def test_golden_package_decodes(golden):
    data, authority_pub, device = golden
    assert data[:5] == MAGIC + b"\x01"
    wl = load_watchlist(data, device, authority_pub, MODEL, DURING)
    assert [e.subject_ref for e in wl.entries] == ["CASE-00000", "CASE-00001", "CASE-00002"]
    assert [e.category for e in wl.entries] == ["wanted_by_court", "suspect", "missing_vulnerable"]
    expected = unit_templates(6, seed=42)
    assert np.array_equal(np.sort(wl.gallery.templates, axis=0), np.sort(expected, axis=0))
    assert wl.search(expected[3], DURING)[0].subject_ref == "CASE-00001"
    header = decode_container(data).header
    assert set(header) == set(HEADER_FIELDS)
    assert header["expires"] == "2026-11-22T16:00:00Z" and header["cipher"] == "AES-256-GCM"


def test_doc_matches_code():
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M))
    assert set(HEADER_FIELDS) <= documented
    assert set(ENTRY_FIELDS) <= documented
    for category in CATEGORIES:
        assert f"`{category}`" in text
    assert SEAL_CONTEXT.decode() in text and "EAWL" in text
