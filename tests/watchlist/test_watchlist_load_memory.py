"""Loading a watchlist makes no copy of the package's ciphertext beyond the one the format needs
(issue 14.4: the device's peak RSS; every copy of a 10,000-entry package is 7.5 MB)."""

from __future__ import annotations

import tracemalloc

from watchlist_helpers import DURING, MODEL

from edge_agent.watchlist.format import decode_container
from edge_agent.watchlist.loader import load_watchlist


def test_loading_copies_the_ciphertext_no_more_than_the_format_needs(world):
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
    # At the peak, traced allocations come to 4.4x the payload here (the container's payload
    # copy, the plaintext, the parsed entries, the gallery's grouped templates); slicing the
    # ciphertext out of the payload added one more payload-sized copy (5.4x).
    assert peak < 5.0 * payload, f"peak {peak / payload:.2f}x the payload"
