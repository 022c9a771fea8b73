"""Loading a watchlist decrypts it straight into the gallery: no copy of the package and no whole
plaintext, what was decrypted on the way is zeroed before the allocator gets it back, and the freed
memory goes back to the kernel (issue 14.4: the device's peak RSS, where each copy of a
10,000-entry package is 6 MB; policing.md 12)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from watchlist_helpers import DURING, MODEL

from edge_agent.crypto.signing import sign
from edge_agent.errors import ConfigError
from edge_agent.watchlist import gallery as gallery_module
from edge_agent.watchlist import loader
from edge_agent.watchlist.entry import CATEGORIES, DeviceEntry
from edge_agent.watchlist.errors import PackageTampered
from edge_agent.watchlist.format import SIGNATURE_DOMAIN, SIGNATURE_LEN, TAG_LEN, decode_container
from edge_agent.watchlist.loader import load_watchlist


class Spies:
    """Every buffer the load decrypts into: the streams' scratch buffers, the entries' plaintext."""

    def __init__(self, monkeypatch) -> None:
        self.streams: list = []
        self.metas: list[bytearray] = []
        spies = self

        class Stream(loader._PlaintextStream):
            def __init__(self, *args) -> None:
                super().__init__(*args)
                spies.streams.append(self)

        def decode_entries(meta):
            self.metas.append(meta)
            return real_decode(meta)

        real_decode = loader.decode_entries
        monkeypatch.setattr(loader, "_PlaintextStream", Stream)
        monkeypatch.setattr(loader, "decode_entries", decode_entries)

    def all_zero(self) -> bool:
        return bool(self.streams) and not any(any(s.scratch) for s in self.streams) and not any(any(m) for m in self.metas)


@pytest.fixture
def spies(monkeypatch) -> Spies:
    return Spies(monkeypatch)


def load(world, data):
    return load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def test_loading_holds_no_more_than_the_gallery_beside_the_package(world):
    data, _ = world.pack(n=2000, templates_each=2, recipients=("cam-01",))
    payload = len(decode_container(data).payload)
    load(world, data)  # imports and caches are not the load's
    tracemalloc.start()
    try:
        watchlist = load(world, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(watchlist.gallery) == 4000
    # At the peak, traced allocations come to 1.6x the payload here: the gallery's templates, the
    # entries, their JSON (dropped before the templates are decrypted) and the gallery's grouping of
    # the subject references. Before: 2.3x with the whole plaintext decrypted beside the gallery's
    # grouped copy, 4.4x when the container also copied the payload and the signed bytes.
    assert peak < 1.9 * payload, f"peak {peak / payload:.2f}x the payload"


def test_what_was_decrypted_on_the_way_is_zeroed_and_the_gallery_is_right(world, spies):
    data, templates = world.pack(n=300, templates_each=2)  # 600 templates: several chunks
    watchlist = load(world, data)
    [stream] = spies.streams
    assert len(stream.scratch) < templates.nbytes // 4, "the plaintext was decrypted whole"
    assert spies.metas and spies.all_zero(), "decrypted bytes left in a freed buffer"
    for row in (0, 41, 599):  # each template landed in its subject's rows
        [best] = watchlist.gallery.search(templates[row], k=1)
        assert best.subject_ref == f"CASE-{row // 2:05d}" and best.score == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(watchlist.gallery.templates, gallery_module.Gallery(templates, [f"CASE-{i // 2:05d}" for i in range(600)]).templates)


def test_a_package_refused_after_decryption_leaves_no_plaintext(world, spies, monkeypatch):
    def refuse(doc):
        raise ConfigError("entry refused for the test", "")

    monkeypatch.setattr(DeviceEntry, "from_json", staticmethod(refuse))
    with pytest.raises(PackageTampered, match="entry is invalid"):
        load(world, world.pack(n=10)[0])
    assert spies.metas and spies.all_zero()


def test_a_payload_that_fails_its_tag_leaves_no_templates(world, spies, monkeypatch):
    # Signed by the authority, so only the GCM tag can catch it, after every template is decrypted.
    data, templates = world.pack(n=10)
    bad = bytearray(data[:-SIGNATURE_LEN])
    bad[-TAG_LEN] ^= 0x01
    resigned = bytes(bad) + sign(world.authority, SIGNATURE_DOMAIN, bytes(bad))
    made = []
    real_empty = np.empty

    def empty(shape, dtype=float, *args, **kwargs):
        array = real_empty(shape, dtype, *args, **kwargs)
        if tuple(np.atleast_1d(shape)) == templates.shape:
            made.append(array)
        return array

    monkeypatch.setattr(loader.np, "empty", empty)
    with pytest.raises(PackageTampered, match="does not decrypt"):
        load(world, resigned)
    [matrix] = made
    assert not matrix.any(), "templates of a refused package left in memory"
    assert spies.all_zero()


def test_a_central_sized_gallery_keeps_the_package_order(world, monkeypatch):
    monkeypatch.setattr(gallery_module, "COMPACT_FROM", 8)
    data, templates = world.pack(n=12)
    watchlist = load(world, data)
    assert watchlist.gallery._index is not None
    np.testing.assert_array_equal(watchlist.gallery.templates, templates)
    [best] = watchlist.gallery.search(templates[5], k=1)
    assert best.subject_ref == "CASE-00005"


def test_freed_memory_is_trimmed_after_the_plaintext_is_zeroed(world, spies, monkeypatch):
    seen = []
    monkeypatch.setattr(loader, "trim_heap", lambda: seen.append(spies.all_zero()) or True)
    load(world, world.pack(n=10)[0])
    assert seen == [True]


def test_loaded_entries_share_the_closed_lists_strings_and_carry_no_dict(world):
    # 10,000 entries on a device: 2.3 -> 1.25 MB with the entries' own objects and strings.
    watchlist = load(world, world.pack(n=8)[0])
    for entry in watchlist.entries:
        assert any(entry.category is category for category in CATEGORIES), f"{entry.category!r} is a copy"
        assert not hasattr(entry, "__dict__")
