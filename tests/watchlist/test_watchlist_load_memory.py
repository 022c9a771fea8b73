"""Loading a watchlist makes no copy of the package beyond the ones the format needs, zeroes its
plaintext before the allocator gets it back, and hands the freed memory to the kernel (issue 14.4:
the device's peak RSS, where each copy of a 10,000-entry package is 6 MB; policing.md 12)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from watchlist_helpers import DURING, MODEL

from edge_agent.errors import ConfigError
from edge_agent.watchlist import gallery as gallery_module
from edge_agent.watchlist import loader
from edge_agent.watchlist.entry import DeviceEntry
from edge_agent.watchlist.errors import PackageTampered
from edge_agent.watchlist.format import decode_container
from edge_agent.watchlist.loader import load_watchlist


class RecordingAESGCM:
    """AESGCM that keeps every buffer it decrypts into, to see what is left in them afterwards."""

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []

    def __call__(self, key: bytes) -> "RecordingAESGCM":
        self._cipher = AESGCM(key)
        return self

    def decrypt_into(self, nonce, data, associated_data, buf) -> int:
        self.buffers.append(buf)
        return self._cipher.decrypt_into(nonce, data, associated_data, buf)


@pytest.fixture
def recording(monkeypatch) -> RecordingAESGCM:
    cipher = RecordingAESGCM()
    monkeypatch.setattr(loader, "AESGCM", cipher)
    return cipher


def test_loading_copies_the_package_no_more_than_the_format_needs(world):
    data, _ = world.pack(n=2000, templates_each=2, recipients=("cam-01",))
    payload = len(decode_container(data).payload)
    device, authority = world.devices["cam-01"], world.authority.public_key()
    load_watchlist(data, device, authority, MODEL, DURING)  # imports and caches are not the load's
    tracemalloc.start()
    try:
        watchlist = load_watchlist(data, device, authority, MODEL, DURING)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(watchlist.gallery) == 4000
    # At the peak, traced allocations come to 2.3x the payload here: the plaintext, the entries and
    # the gallery's grouped templates (the parsed JSON is freed before the gallery is made). Before:
    # 4.4x (the container copied the payload and the signed bytes, and the JSON lived on to the
    # end), 5.4x when the ciphertext was also sliced out of the payload.
    assert peak < 3.0 * payload, f"peak {peak / payload:.2f}x the payload"


def test_the_plaintext_is_zeroed_and_the_gallery_holds_the_only_copy(world, recording):
    data, templates = world.pack(n=40, templates_each=2)
    watchlist = load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    [buffer] = recording.buffers
    assert len(buffer) > templates.nbytes
    assert not any(buffer), "decrypted templates left in a freed buffer"
    assert not np.may_share_memory(watchlist.gallery.templates, np.frombuffer(buffer, np.uint8))
    for row in (0, 41, 79):  # the templates survived the wipe: each finds its own subject
        [best] = watchlist.gallery.search(templates[row], k=1)
        assert best.subject_ref == f"CASE-{row // 2:05d}" and best.score == pytest.approx(1.0, abs=1e-5)


def test_a_package_refused_after_decryption_leaves_no_plaintext(world, recording, monkeypatch):
    data, _ = world.pack(n=10)

    def refuse(doc):
        raise ConfigError("entry refused for the test", "")

    monkeypatch.setattr(DeviceEntry, "from_json", staticmethod(refuse))
    with pytest.raises(PackageTampered, match="entry is invalid"):
        load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    [buffer] = recording.buffers
    assert len(buffer) > 0 and not any(buffer)


def test_a_central_sized_gallery_keeps_its_templates_and_only_the_rest_is_zeroed(world, recording, monkeypatch):
    # From COMPACT_FROM templates up the gallery indexes the templates where they lie, unmoved.
    monkeypatch.setattr(gallery_module, "COMPACT_FROM", 8)
    data, templates = world.pack(n=12)
    watchlist = load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    [buffer] = recording.buffers
    assert watchlist.gallery._index is not None
    template_bytes = templates.nbytes
    assert not any(buffer[:-template_bytes]), "the entries' plaintext was left in the buffer"
    np.testing.assert_array_equal(np.frombuffer(buffer[-template_bytes:], np.float32).reshape(templates.shape), templates)
    [best] = watchlist.gallery.search(templates[5], k=1)
    assert best.subject_ref == "CASE-00005"


def test_freed_memory_is_trimmed_after_the_plaintext_is_zeroed(world, recording, monkeypatch):
    seen = []
    monkeypatch.setattr(loader, "trim_heap", lambda: seen.append([bytes(b) for b in recording.buffers]) or True)
    load_watchlist(world.pack(n=10)[0], world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    [[buffer]] = seen
    assert not any(buffer)
