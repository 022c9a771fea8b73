"""subjects.csv validation: every problem reported with its line, before any image is embedded."""

from __future__ import annotations

import pytest
from watchlist_helpers import START, make_record

from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import ConfigError
from edge_agent.watchlist.build import SUBJECT_COLUMNS, build_watchlist, read_subjects_csv
from edge_agent.watchlist.errors import WatchlistBuildError

HEADER = ",".join(SUBJECT_COLUMNS)
GOOD = "CASE-1,suspect,a.jpg;b.jpg,custody,PACE s64A,2024-01-01;2025-01-01,2026-01-01,no,"


def _csv(tmp_path, *rows, header=HEADER):
    path = tmp_path / "subjects.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_good_row(tmp_path):
    (row,) = read_subjects_csv(_csv(tmp_path, GOOD))
    assert row.images == ("a.jpg", "b.jpg") and [d.year for d in row.image_dates] == [2024, 2025] and not row.under_18


def test_all_problems_reported_with_lines(tmp_path):
    rows = [
        GOOD,
        "John Smith,suspect,a.jpg,custody,PACE,2024-01-01,2026-01-01,no,",
        "CASE-3,other,a.jpg,custody,PACE,2024-01-01,2026-01-01,no,",
        "CASE-4,suspect,a.jpg,custody,PACE,2024-01-01,2026-01-01,yes,",
        "CASE-5,suspect,a.jpg;b.jpg,custody,PACE,2024-01-01;2024-02-01;2024-03-01,2026-01-01,no,",
        "CASE-6,suspect,a.jpg,custody,PACE,01/02/2024,2026-01-01,no,",
        GOOD,
    ]
    with pytest.raises(ConfigError) as info:
        read_subjects_csv(_csv(tmp_path, *rows))
    message = info.value.message
    for fragment in ("line 3", "opaque", "line 4", "closed list", "line 5", "under 18", "line 6", "image dates", "line 7", "not a date", "line 8", "repeats line 2"):
        assert fragment in message, fragment


def test_extra_columns_refused(tmp_path):
    with pytest.raises(ConfigError, match="unexpected column.*name"):
        read_subjects_csv(_csv(tmp_path, GOOD + ",Jane", header=HEADER + ",name"))


def test_missing_columns_refused(tmp_path):
    with pytest.raises(ConfigError, match="lacks column"):
        read_subjects_csv(_csv(tmp_path, "CASE-1,suspect", header="subject_ref,category"))


def test_missing_or_escaping_images_refused_before_embedding(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    authority = Ed25519PrivateKey.generate()
    deployment = SignedDeployment.sign(make_record(), authority)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    rows = read_subjects_csv(_csv(tmp_path, GOOD.replace("a.jpg;b.jpg", "../secret.jpg;nothere.jpg")))

    class NeverCalled:
        identity = None

    with pytest.raises(ConfigError) as info:
        build_watchlist(deployment, rows, tmp_path / "imgs", {}, authority, NeverCalled(), START)
    assert "../secret.jpg" in info.value.message and "nothere.jpg" in info.value.message


def test_over_cap_refused_before_embedding(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    authority = Ed25519PrivateKey.generate()
    deployment = SignedDeployment.sign(make_record(watchlist_cap=1), authority)
    rows = read_subjects_csv(_csv(tmp_path, GOOD, GOOD.replace("CASE-1", "CASE-2")))
    with pytest.raises(WatchlistBuildError, match="cap of 1"):
        build_watchlist(deployment, rows, tmp_path, {}, authority, object(), START)
