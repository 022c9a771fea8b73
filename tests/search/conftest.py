"""Fixtures for the search tests (helpers live in search_helpers.py)."""

from __future__ import annotations

import pytest
from search_helpers import Site, build_site


@pytest.fixture(scope="module")
def rfr_site(tmp_path_factory, fixtures_dir) -> Site:
    return build_site(tmp_path_factory.mktemp("rfr"), fixtures_dir)


@pytest.fixture
def site_copy(rfr_site, tmp_path) -> Site:
    """The RFR site with a fresh audit log of its own (tests that read the log start from nothing)."""
    return Site(rfr_site.root, rfr_site.deployment, rfr_site.watchlist, tmp_path / "audit.log")
