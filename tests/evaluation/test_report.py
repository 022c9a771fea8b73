"""Embedding runner and cache, the full analysis, the HTML report and report.json, the calibrate CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from eval_synthetic import make_set

from edge_agent.cli.evaluate import EXIT_GATE_FAILED, write_outputs
from edge_agent.cli.main import main
from edge_agent.evaluation.analysis import (
    EvaluationSettings,
    analyse,
    identification_from_report,
)
from edge_agent.evaluation.dataset import (
    UNLABELLED_GROUP,
    DatasetError,
    load_groups,
    scan_dataset,
)
from edge_agent.evaluation.embedding_cache import EmbeddingCache, EnrolmentOutcome
from edge_agent.evaluation.runner import embed_dataset

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MODEL = {"detector_sha256": "d" * 64, "aligner": "test", "embedder_sha256": "e" * 64}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def synthetic(tmp_path):
    return make_set(tmp_path / "set", [4] * 40 + [1] * 30, fail_every=13)


def _evaluate(synthetic, tmp_path, sizes=(1000,), groups=True):
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        embedded = embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
    return analyse(embedded, synthetic.groups if groups else None, EvaluationSettings(watchlist_sizes=sizes, operating_threshold=0.2),
                   {"root": str(synthetic.dataset.root), "identities": 70}, NOW)


def test_cache_avoids_re_embedding_and_is_private(synthetic, tmp_path):
    cache_path = tmp_path / "cache.sqlite"
    with EmbeddingCache(cache_path) as cache:
        first = embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
    calls = len(synthetic.calls)
    assert calls == len(synthetic.dataset.images) + sum(1 for _ in first.enrolment) + len(first.enrol_refusals)
    assert stat.S_IMODE(os.stat(cache_path).st_mode) == 0o600
    with EmbeddingCache(cache_path) as cache:
        second = embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
    assert len(synthetic.calls) == calls  # nothing embedded again
    assert second.cache_hits == calls
    assert np.array_equal(first.probe, second.probe) and np.array_equal(first.probe_ok, second.probe_ok)
    with EmbeddingCache(cache_path) as cache:  # another model identity: a miss
        embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, {**MODEL, "embedder_sha256": "f" * 64}, 1, cache)
    assert len(synthetic.calls) == 2 * calls


def test_cached_embeddings_are_filed_under_the_installed_library_versions(synthetic, tmp_path):
    """An OpenCV or LiteRT upgrade changes embeddings without changing the model description, so
    the key carries their installed versions: a cache filled under other versions is never served."""
    import sqlite3
    from dataclasses import replace

    from edge_agent.evaluation.runner import cache_key
    from edge_agent.library_pins import scored_versions

    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        keys = {row[0] for row in db.execute("SELECT DISTINCT model_key FROM embeddings")}
    installed = scored_versions()
    assert keys == {cache_key(MODEL, "probe", installed), cache_key(MODEL, "enrol", installed)}
    upgraded = [replace(v, installed="9.9.9") if v.name == "opencv-python-headless" else v for v in installed]
    assert cache_key(MODEL, "probe", upgraded) not in keys


def test_a_changed_image_is_re_embedded(synthetic, tmp_path):
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
        path = synthetic.dataset.images[0].path
        path.write_bytes(b"edited image")
        before = len(synthetic.calls)
        embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, MODEL, 1, cache)
    assert synthetic.calls[before:] == [path, path]  # as a probe and as an enrolment image


def test_enrolment_failures_are_reported_with_reasons(synthetic, tmp_path):
    evaluation = _evaluate(synthetic, tmp_path)
    enrol = evaluation.report["enrolment"]
    failed = len(synthetic.fail)
    assert enrol["failure_rate"]["events"] == failed and enrol["failures_by_reason"] == {"no_face": failed}
    assert enrol["enrolled"] == len(synthetic.dataset.images) - failed


def test_report_numbers_follow_from_the_scores(synthetic, tmp_path):
    evaluation = _evaluate(synthetic, tmp_path)
    r = evaluation.report
    ver = evaluation.verification
    row = next(x for x in r["verification"]["sweep"] if x["threshold"] == 0.3)
    assert row["fmr"]["events"] == int(np.count_nonzero(ver.impostor >= 0.3))
    assert row["fnmr"]["events"] == int(np.count_nonzero(ver.genuine < 0.3))
    # 1000 requested, not possible: the largest size is evaluated and the report says so
    sizes = r["identification"]["sizes"]
    assert [s["watchlist_size"] for s in sizes] == [r["identification"]["max_size"]]
    assert any("1,000 not possible" in n for n in r["notes"])
    ident = evaluation.identification[0]
    id_row = next(x for x in sizes[0]["sweep"] if x["threshold"] == 0.3)
    assert id_row["fpir"]["events"] == int(np.count_nonzero(ident.nonmated_top >= 0.3))
    assert id_row["fnir"]["events"] == int(np.count_nonzero(ident.mated_hit < 0.3))
    # per-group rates add up to the whole; the ratio is group rate over overall rate
    diff = r["differentials"]["fpir"]
    assert diff["overall"]["events"] > 0
    assert sum(g["trials"] for g in diff["groups"].values()) == diff["overall"]["trials"]
    for g in diff["groups"].values():
        if g["ratio_to_overall"] is not None:
            assert g["ratio_to_overall"] == pytest.approx(g["rate"] / diff["overall"]["rate"])
    best = diff["max_ratio"]
    assert best["ratio"] == max(g["ratio_to_overall"] for g in diff["groups"].values() if g["ratio_to_overall"] is not None)
    # the stored scores rebuild exactly
    rebuilt = identification_from_report(json.loads(json.dumps(r)))[0]
    assert np.array_equal(rebuilt.nonmated_top, ident.nonmated_top) and np.array_equal(rebuilt.mated_hit, ident.mated_hit)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "table":
            self.tables += 1


def test_html_report_renders_with_sections_and_embedded_plots(synthetic, tmp_path):
    evaluation = _evaluate(synthetic, tmp_path)
    json_path, html_path, digest = write_outputs(evaluation, tmp_path / "out", None)
    assert hashlib.sha256(json_path.read_bytes()).hexdigest() == digest
    page = html_path.read_text()
    parser = _Collector()
    parser.feed(page)
    assert parser.sections == ["summary", "enrolment", "verification", "identification", "groups", "method"]
    assert len(parser.images) >= 5 and parser.tables >= 6
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert "not possible" in page


def test_report_without_groups_has_no_group_section(synthetic, tmp_path):
    evaluation = _evaluate(synthetic, tmp_path, groups=False)
    assert "differentials" not in evaluation.report and evaluation.report["groups"] == []
    _, html_path, _ = write_outputs(evaluation, tmp_path / "out", None)
    parser = _Collector()
    parser.feed(html_path.read_text())
    assert "groups" not in parser.sections


def _doc_fields(doc: str, heading: str) -> list[str]:
    text = (REPO / "docs" / "formats" / doc).read_text()
    block = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", block, flags=re.MULTILINE)


def test_report_json_fields_match_the_format_doc(synthetic, tmp_path):
    evaluation = _evaluate(synthetic, tmp_path)
    r = json.loads(json.dumps(evaluation.report))
    assert r["format"] == "edge-agent-evaluation" and r["version"] == 1
    from edge_agent.library_pins import scored_versions

    assert r["libraries"] == {v.name: v.installed for v in scored_versions()} and r["libraries"]["opencv-python-headless"]
    assert sorted(_doc_fields("evaluation-report.md", "Top level")) == sorted(k for k in r if k != "gate")
    assert sorted(_doc_fields("evaluation-report.md", "Rate")) == sorted(r["enrolment"]["failure_rate"])
    assert sorted(_doc_fields("evaluation-report.md", "identification.sizes[]")) == sorted(r["identification"]["sizes"][0])


def test_calibrate_cli_cites_the_report_and_writes_a_documented_record(tmp_path, capsys):
    evaluation = _evaluate(make_set(tmp_path / "set", [3] * 30 + [1] * 300), tmp_path)
    json_path, _, digest = write_outputs(evaluation, tmp_path / "out", None)
    out = tmp_path / "calibration.json"
    code = main(["calibrate", "--evaluation", str(json_path), "--watchlist-size", "10", "--footfall", "1000",
                 "--budget", "1/20", "--out", str(out)])
    record = json.loads(out.read_text())
    assert code == 0, record["reason"]
    assert record["evaluation_report_sha256"] == digest and record["model"] == MODEL
    assert record["recommended_threshold"] is not None
    assert record["fpir"]["ci95"][1] <= 1 / 20
    assert sorted(_doc_fields("calibration.md", "Fields")) == sorted(record)
    # too tight a budget for this many searches: exit 3 and the reason on stderr
    code = main(["calibrate", "--evaluation", str(json_path), "--watchlist-size", "10", "--footfall", "1000", "--budget", "1/6000"])
    assert code == EXIT_GATE_FAILED
    assert "are needed" in capsys.readouterr().err


def test_calibrate_cli_rejects_a_file_that_is_not_a_report(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text('{"format": "something-else"}')
    assert main(["calibrate", "--evaluation", str(bogus), "--watchlist-size", "10", "--footfall", "10", "--budget", "1/100"]) == 2
    assert "not an edge-agent evaluation report" in capsys.readouterr().err


def test_dataset_scan_and_groups_file(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        scan_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        scan_dataset(tmp_path / "empty")
    (tmp_path / "set" / "alice").mkdir(parents=True)
    (tmp_path / "set" / "alice" / "a.JPG").write_bytes(b"x")
    (tmp_path / "set" / "alice" / "notes.txt").write_text("ignored")
    (tmp_path / "set" / "manifest.csv").write_text("ignored")
    ds = scan_dataset(tmp_path / "set")
    assert [im.path.name for im in ds.images] == ["a.JPG"] and ds.identities == ("alice",)
    groups = tmp_path / "groups.csv"
    groups.write_text("identity,group\nalice,F\n")
    assert load_groups(groups, ("alice", "bob")) == {"alice": "F", "bob": UNLABELLED_GROUP}
    groups.write_text("alice,F\n")
    with pytest.raises(DatasetError, match="header"):
        load_groups(groups)
    groups.write_text("identity,group\nalice,F\nalice,M\n")
    with pytest.raises(DatasetError, match="two groups"):
        load_groups(groups)


def test_dataset_content_hash_follows_labels_and_bytes_not_location(tmp_path):
    for root in ("a", "b"):
        for identity, name, data in (("alice", "1.jpg", b"one"), ("bob", "2.jpg", b"two")):
            (tmp_path / root / identity).mkdir(parents=True, exist_ok=True)
            (tmp_path / root / identity / name).write_bytes(data)
    first = scan_dataset(tmp_path / "a").content_sha256()
    assert first == scan_dataset(tmp_path / "b").content_sha256()  # same set stored elsewhere
    (tmp_path / "b" / "bob" / "2.jpg").write_bytes(b"twO")
    changed_bytes = scan_dataset(tmp_path / "b").content_sha256()
    (tmp_path / "b" / "bob" / "2.jpg").write_bytes(b"two")
    (tmp_path / "b" / "bob" / "2.jpg").rename(tmp_path / "b" / "alice" / "2.jpg")  # relabelled
    (tmp_path / "b" / "bob").rmdir()
    relabelled = scan_dataset(tmp_path / "b").content_sha256()
    assert len({first, changed_bytes, relabelled}) == 3


def test_embedding_cache_rejects_a_file_that_is_not_a_database(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    from edge_agent.evaluation.embedding_cache import CacheError

    with pytest.raises(CacheError, match="--no-cache"):
        EmbeddingCache(bad)


def test_embedder_returning_a_bad_vector_is_an_error(tmp_path):
    s = make_set(tmp_path / "set", [2, 2])
    with pytest.raises(ValueError, match="unusable vector"):
        embed_dataset(s.dataset, lambda p: EnrolmentOutcome(np.zeros(128, np.float32)), s.embed, MODEL)


def test_several_reference_images_per_subject(tmp_path):
    s = make_set(tmp_path / "set", [4] * 20 + [2] * 10 + [1] * 20)
    embedded = embed_dataset(s.dataset, s.embed, s.embed, MODEL, enrol_per_subject=2)
    assert all(len(v) == 2 for v in embedded.enrolment.values()) and len(embedded.enrolment) == 20  # 2-image people cannot also probe
    evaluation = analyse(embedded, None, EvaluationSettings(watchlist_sizes=(20,), enrol_per_subject=2), {"root": "x"}, NOW)
    size = evaluation.report["identification"]["sizes"][0]
    assert size["watchlist_size"] == 20
    assert size["mated_probes"] == 20 * 2  # the two images of each not enrolled
    assert size["nonmated_probes"] == 10 * 2 + 20


def test_the_model_description_names_the_precision_so_variants_never_share_cached_embeddings():
    """int8 and float32 variants share a ModelIdentity (a calibration holds for both) but not their
    scores: the evaluation's model (the cache key, and what a report states) names the variant."""
    from edge_agent.evaluation.runner import core_model_description
    from edge_agent.vision.core import RecognitionCore

    int8, float32 = (core_model_description(RecognitionCore.load(detector="full", precision=p)) for p in ("int8", "float32"))
    assert (int8["precision"], float32["precision"]) == ("int8", "float32")
    assert {k: v for k, v in int8.items() if k != "precision"} == {k: v for k, v in float32.items() if k != "precision"}
    assert int8 != float32
