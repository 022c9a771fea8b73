"""Release gate on constructed fair and biased score sets; threshold calibration against its rule."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.evaluation import metrics
from edge_agent.evaluation.calibrate import (
    CalibrationError,
    calibrate,
    choose_scores,
    encode_calibration,
    max_errors_within,
    parse_budget,
    searches_needed,
)
from edge_agent.evaluation.gate import release_gate
from edge_agent.evaluation.identification import IdentificationScores
from edge_agent.version import tool_version

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GROUPS = ("A", "B", "C")


def scores_for(per_group: dict[int, tuple[int, float]], size: int = 1000, seed: int = 0) -> IdentificationScores:
    """Non-mated top scores per group: (count, FPIR at 0.6 to plant). Scores are uniform below 0.6
    except a planted share drawn from [0.6, 0.8)."""
    rng = np.random.default_rng(seed)
    tops, groups = [], []
    for code, (count, fpir) in per_group.items():
        s = rng.uniform(0.0, 0.5999, count)
        hits = rng.choice(count, round(fpir * count), replace=False)
        s[hits] = rng.uniform(0.6, 0.8, len(hits))
        tops.append(s)
        groups.append(np.full(count, code))
    mated = rng.uniform(0.5, 1.0, 500)
    return IdentificationScores(size, mated, np.zeros(500, np.int64), np.concatenate(tops), np.concatenate(groups).astype(np.int64))


def test_gate_passes_a_fair_system_within_budget():
    fair = scores_for({0: (40_000, 1e-4), 1: (40_000, 1e-4), 2: (40_000, 1e-4)})
    result = release_gate(fair, GROUPS, 0.6, budget=1 / 4000)
    assert result.passed, result.reasons
    assert result.fpir.events == 12 and result.fpir.upper <= 1 / 4000
    assert not any(t.significant for t in result.groups)


def test_gate_fails_when_one_group_has_much_higher_fpir():
    biased = scores_for({0: (40_000, 1e-4), 1: (40_000, 1e-3), 2: (40_000, 1e-4)})
    result = release_gate(biased, GROUPS, 0.6, budget=1 / 100)  # budget is generous: only the bias fails it
    assert not result.passed
    flagged = [t.group for t in result.groups if t.significant]
    assert flagged == ["B"]
    assert any("group 'B'" in r for r in result.reasons)
    b = next(t for t in result.groups if t.group == "B")
    assert b.p_holm >= b.p_value and b.p_holm < 0.05


def test_gate_fails_when_fpir_upper_bound_is_over_budget():
    fair = scores_for({0: (10_000, 1e-3), 1: (10_000, 1e-3)})
    result = release_gate(fair, GROUPS[:2], 0.6, budget=1e-3)  # point estimate equals budget; bound exceeds it
    assert not result.passed
    assert any("over the budget" in r for r in result.reasons)


def test_gate_does_not_flag_a_small_group_on_noise():
    # 2 false alerts in 500 searches vs 10 in 20,000: higher, but not significantly after Holm
    scores = scores_for({0: (20_000, 5e-4), 1: (500, 4e-3), 2: (20_000, 5e-4)})
    result = release_gate(scores, GROUPS, 0.6, budget=0.01)
    b = next(t for t in result.groups if t.group == "B")
    assert b.fpir.events == 2
    assert b.p_value == pytest.approx(metrics.fisher_greater_pvalue(2, 500, 20, 40_000))
    assert not b.significant and result.passed


@pytest.mark.parametrize("text, rate", [("1/6000", 1 / 6000), ("1 in 6,000", 1 / 6000), ("0.001", 0.001), ("2/1000", 0.002)])
def test_parse_budget(text, rate):
    assert parse_budget(text).rate == pytest.approx(rate)


@pytest.mark.parametrize("text", ["", "abc", "0", "6000/1", "1/0", "-1/10"])
def test_parse_budget_rejects_nonsense(text):
    with pytest.raises(CalibrationError):
        parse_budget(text)


def test_max_errors_within_is_the_largest_count_whose_upper_bound_fits():
    n, budget = 200_000, 1 / 6000
    k = max_errors_within(budget, n)
    assert metrics.wilson_interval(k, n)[1] <= budget < metrics.wilson_interval(k + 1, n)[1]
    assert max_errors_within(budget, 1000) is None
    needed = searches_needed(budget)
    assert metrics.wilson_interval(0, needed)[1] <= budget < metrics.wilson_interval(0, needed - 1)[1]


def test_calibration_recommends_the_lowest_threshold_whose_upper_bound_fits_the_budget():
    rng = np.random.default_rng(3)
    nonmated = rng.beta(2, 6, 300_000)  # scores in (0, 1), long right tail
    scores = IdentificationScores(1000, rng.uniform(0.3, 1.0, 1000), np.zeros(1000, np.int64), nonmated, np.zeros(nonmated.size, np.int64))
    budget = parse_budget("1/6000")
    record = calibrate(scores, budget, 800, 50_000, NOW, "ab" * 32, {"embedder_sha256": "x"})
    t = record["recommended_threshold"]
    assert t is not None and record["evaluated_watchlist_size"] == 1000
    k = int(np.count_nonzero(nonmated >= t))
    assert record["fpir"]["events"] == k and metrics.wilson_interval(k, nonmated.size)[1] <= budget.rate
    lower = t - 1e-4  # one step lower on the reported grid is over budget
    k_lower = int(np.count_nonzero(nonmated >= lower))
    assert metrics.wilson_interval(k_lower, nonmated.size)[1] > budget.rate
    assert record["expected_false_alerts"]["upper95"] == pytest.approx(record["fpir"]["ci95"][1] * 50_000)
    assert record["evaluation_report_sha256"] == "ab" * 32
    fnir = np.count_nonzero(scores.mated_hit < t)
    assert record["fnir"]["events"] == fnir
    # the gate agrees with the calibration on budget
    assert release_gate(scores, (), t, budget.rate).passed


def test_calibration_record_matches_the_documented_golden():
    """docs/formats/calibration.md's example is exactly what calibrate writes for the inputs it names."""
    scores = IdentificationScores(20, np.linspace(0.5, 1.0, 20), np.zeros(20, np.int64), np.linspace(0.0, 0.8, 200), np.zeros(200, np.int64))
    model = {"detector_sha256": "d" * 64, "aligner": "arcface112-umeyama-eyes-nose-mouthcentre-v1", "embedder_sha256": "e" * 64}
    record = calibrate(scores, parse_budget("1/20"), 10, 1000, NOW, "ab" * 32, model, "ef" * 32)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "formats" / "calibration.md").read_text()
    section = doc.split("## Example (golden)", 1)[1]
    golden = section.split("```json\n", 1)[1].split("\n```", 1)[0].encode() + b"\n"
    assert record["tool_version"] == tool_version()
    data = encode_calibration({**record, "tool_version": json.loads(golden)["tool_version"]})
    assert data == golden  # byte for byte: the file calibrate writes, and what report_sha256 hashes
    assert hashlib.sha256(golden).hexdigest() in section
    # the upper bound is the one that had to fit, and it is what the record states
    assert record["fpir_upper95"] == record["fpir"]["ci95"][1] <= 1 / 20
    assert record["mated_searches"] == 20 and record["nonmated_searches"] == 200


def test_calibration_refuses_when_the_evaluation_is_too_small():
    scores = IdentificationScores(46, np.array([0.9, 0.8]), np.zeros(2, np.int64), np.linspace(0, 0.4, 44), np.zeros(44, np.int64))
    record = calibrate(scores, parse_budget("1/6000"), 46, 10_000, NOW, None, None)
    assert record["recommended_threshold"] is None
    assert f"{searches_needed(1 / 6000):,}" in record["reason"]


def test_choose_scores_takes_the_next_size_up_and_refuses_extrapolation():
    def s(size):
        return IdentificationScores(size, np.zeros(1), np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64))

    available = [s(1000), s(10_000)]
    assert choose_scores(available, 800).watchlist_size == 1000
    assert choose_scores(available, 1000).watchlist_size == 1000
    assert choose_scores(available, 5000).watchlist_size == 10_000
    with pytest.raises(CalibrationError, match="at most 10,000"):
        choose_scores(available, 20_000)


@pytest.mark.parametrize("shared_b, passes", [(0.0, True), (0.35, False)])
def test_gate_through_the_whole_pipeline_on_fair_and_biased_sets(tmp_path, shared_b, passes):
    """Group B's people are made to look alike (a shared direction in their embeddings): the
    classic source of demographic false-positive differentials. Same data volume, same threshold."""
    import json

    from eval_synthetic import make_set

    from edge_agent.evaluation.analysis import (
        EvaluationSettings,
        analyse,
        identification_from_report,
    )
    from edge_agent.evaluation.runner import embed_dataset

    s = make_set(tmp_path / "set", [3] * 80 + [1] * 240, shared_b=shared_b)
    embedded = embed_dataset(s.dataset, s.embed, s.embed, {"test": True})
    evaluation = analyse(embedded, s.groups, EvaluationSettings(watchlist_sizes=(80,), operating_threshold=0.3), {"root": "x"}, NOW)
    scores = identification_from_report(json.loads(json.dumps(evaluation.report)))[0]  # the gate works from the saved file
    result = release_gate(scores, evaluation.group_names, 0.3, budget=0.5)
    assert result.passed is passes, result.reasons
    if not passes:
        assert [t.group for t in result.groups if t.significant] == ["B"]
        assert evaluation.report["differentials"]["fpir"]["max_ratio"]["group"] == "B"
