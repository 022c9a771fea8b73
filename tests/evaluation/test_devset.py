"""End to end on the real dev set with the real recognition core: evaluate, gate, calibrate."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from edge_agent.cli.evaluate import EXIT_GATE_FAILED
from edge_agent.cli.main import main

pytestmark = pytest.mark.devset


class _Parts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1


@pytest.fixture(scope="module")
def evaluated(devset, tmp_path_factory):
    """One real evaluation (embedding every image once), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("devset-eval")
    identities = sorted(p.name for p in devset.iterdir() if p.is_dir())
    groups = tmp / "groups.csv"
    # arbitrary labels: the point is that per-group numbers are produced from real scores
    groups.write_text("identity,group\n" + "".join(f"{name},{'A' if k % 2 else 'B'}\n" for k, name in enumerate(identities)))
    out = tmp / "out"
    cache = tmp / "cache.sqlite"
    args = ["evaluate", str(devset), "--groups", str(groups), "--out", str(out), "--cache", str(cache), "--threshold", "0.5"]
    assert main(args) == 0
    return {"out": out, "cache": cache, "groups": groups, "args": args, "devset": devset}


def test_devset_report_is_complete_and_plausible(evaluated):
    report = json.loads((evaluated["out"] / "report.json").read_text())
    enrol = report["enrolment"]
    assert enrol["attempted"] == report["dataset"]["images"] > 150
    assert enrol["enrolled"] + enrol["failure_rate"]["events"] == enrol["attempted"]
    assert enrol["failure_rate"]["rate"] < 0.2, enrol["failures_by_reason"]
    # real reasons from the real pipeline: group photos in the set are ambiguous, never guessed
    assert enrol["failures_by_reason"].get("multiple_faces", 0) >= 1
    assert all(f["reasons"] for f in enrol["failures"])
    # LFW-style photos with SFace: TAR at FAR 1e-2 is far above chance
    tar = {op["target"]: op for op in report["verification"]["tar_at_far"]}
    assert tar[0.01]["resolvable"] and tar[0.01]["true_positive"]["rate"] > 0.8
    # 90 identities: 1,000 and 10,000 are not possible, and the report says what was done instead
    sizes = report["identification"]["sizes"]
    assert len(sizes) == 1 and sizes[0]["watchlist_size"] == report["identification"]["max_size"] < 1000
    assert any("not possible" in note for note in report["notes"])
    assert sizes[0]["mated_probes"] > 20 and sizes[0]["nonmated_probes"] > 20
    assert set(report["differentials"]["fpir"]["groups"]) == {"A", "B"}
    parts = _Parts()
    parts.feed((evaluated["out"] / "report.html").read_text())
    assert parts.sections == ["summary", "enrolment", "verification", "identification", "groups", "method"]
    assert parts.images >= 5  # 1:1 DET and scores, 1:N DET and scores, FPIR by group


def test_devset_meets_issue_13_targets(evaluated):
    """Issue 13's dev-set targets, on every run: TAR at FAR 0.1 % no lower than before the
    recognition rework (0.9925), and no single-person portrait refused. The one photo refused is a
    real two-person photo (Frank_Abagnale_Jr_0001: a second man's face, 89 px, at the shoulder of
    the subject's 100 px), which the one subject rule must not guess."""
    report = json.loads((evaluated["out"] / "report.json").read_text())
    tar = {op["target"]: op for op in report["verification"]["tar_at_far"]}
    assert tar[0.001]["resolvable"] and tar[0.001]["true_positive"]["rate"] >= 0.9925, tar[0.001]
    refused = {f["image"]: f["reasons"] for f in report["enrolment"]["failures"]}
    assert refused == {"Frank_Abagnale_Jr/Frank_Abagnale_Jr_0001.jpg": ["multiple_faces"]}


def test_second_run_reuses_every_embedding(evaluated, capsys):
    out2 = evaluated["out"].parent / "out2"
    args = [a if a != str(evaluated["out"]) else str(out2) for a in evaluated["args"]] + ["--json"]
    assert main(args) == 0
    report = json.loads((out2 / "report.json").read_text())
    assert report["enrolment"]["cache_hits"] == report["enrolment"]["attempted"] + report["enrolment"]["reference_refusals"]["attempted"]


def test_gate_fails_a_budget_the_devset_cannot_support_and_passes_a_loose_one(evaluated, capsys):
    base = [a for a in evaluated["args"] if a != "0.5" and a != "--threshold"]
    assert main(base + ["--gate", "--threshold", "0.5", "--budget", "1/6000"]) == EXIT_GATE_FAILED
    err = capsys.readouterr().err
    assert "release gate FAILED" in err and "over the budget" in err
    assert main(base + ["--gate", "--threshold", "0.95", "--budget", "1/2"]) == 0
    report = json.loads((evaluated["out"] / "report.json").read_text())
    assert report["gate"]["passed"] and report["gate"]["threshold"] == 0.95


def test_calibrate_from_the_devset_report(evaluated, capsys):
    report_path = evaluated["out"] / "report.json"
    code = main(["calibrate", "--evaluation", str(report_path), "--watchlist-size", "20", "--footfall", "5000", "--budget", "1/10"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["recommended_threshold"] is not None
    assert record["fpir"]["ci95"][1] <= 0.1


def test_worker_processes_give_the_same_scores_as_one_process(devset, tmp_path):
    subset = tmp_path / "subset"
    for folder in sorted(p for p in devset.iterdir() if p.is_dir())[:24]:
        (subset / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (subset / folder.name / image.name).symlink_to(image)
    (subset / folder.name / "truncated.jpg").write_bytes(next(folder.iterdir()).read_bytes()[:300])  # a copy cut short
    reports = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert main(["evaluate", str(subset), "--out", str(out), "--no-cache", "--workers", workers, "--watchlist-sizes", "5"]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    one, two = reports
    assert one["identification"]["sizes"][0]["scores"] == two["identification"]["sizes"][0]["scores"]
    assert one["verification"]["sweep"] == two["verification"]["sweep"]
    assert one["enrolment"]["failures"] == two["enrolment"]["failures"]
    assert {"image": f"{folder.name}/truncated.jpg", "reasons": ["unreadable"]} in one["enrolment"]["failures"]
