"""Issue 13.6, a calibrated default: the demo's deployment cites the dev set's calibration shipped as
package data (edge_agent/demo/devset-calibration.json), not the provisional 0.55.

The core tests run on a fresh clone: the shipped report is cited by the SHA-256 of its bytes, its
threshold, watchlist size and budget are the deployment's, `deployment verify --calibration` holds,
and `calibrate` re-run on the shipped evaluation report reproduces it. The dev-set test re-runs the
whole calibration from the images (the command the README gives) and checks the shipped figures.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from edge_agent.agent.config import load_config
from edge_agent.cli.main import main
from edge_agent.demo.live import DEMO_CALIBRATION, DEMO_EVALUATION, provision_site
from edge_agent.demo.scenes import write_walk_past_video
from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, CalibrationCitation
from edge_agent.deployment.policy import needs_threshold_approval, threshold_evidence
from edge_agent.deployment.record import SignedDeployment
from edge_agent.evaluation import metrics
from edge_agent.evaluation.calibrate import encode_calibration
from edge_agent.identity.keys import load_authority_public
from edge_agent.vision.core import ModelFiles
from edge_agent.vision.identity import DEFAULT_DETECTOR

#: The command the README gives (run from the dev set's parent folder); --precision pins the model
#: variants so the figures reproduce on any CPU.
CALIBRATE_ARGS = ["--watchlist-size", "2", "--footfall", "1000", "--budget", "1/50", "--precision", "int8"]
#: Fields that name when and by which run a report was made, not what it found.
RUN_FIELDS = ("created_at", "tool_version", "evaluation_report_sha256")


def _shipped() -> dict:
    return json.loads(DEMO_CALIBRATION.read_bytes())


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-calibration")
    video = write_walk_past_video(tmp / "v.avi", ["obama_2.jpg"], seconds_each=0.2)
    return provision_site(tmp, video, file_mode="every_frame")


def test_the_demo_deployment_cites_the_shipped_calibration_by_its_sha256(demo_site):
    data = DEMO_CALIBRATION.read_bytes()
    report = _shipped()
    record = SignedDeployment.load(demo_site.deployment_path).verify(load_authority_public(demo_site.authority_pub))
    assert record.version == 3 and isinstance(record.calibration, CalibrationCitation)
    assert record.calibration.report_sha256 == hashlib.sha256(data).hexdigest()
    assert record.alert_threshold == record.calibration.threshold == report["recommended_threshold"] != CALIBRATED_DEFAULT_THRESHOLD
    assert record.watchlist_cap == report["watchlist_size"] and record.false_alert_budget == report["budget"]["false_alerts_per_face"]
    assert threshold_evidence(record)["threshold_basis"] == "calibration_report" and not needs_threshold_approval(record)
    # the device runs the same site's config with that record, and the report holds for the bundled models it runs
    config = load_config(demo_site.config_path)
    assert config.deployment.record == demo_site.deployment_path
    running = ModelFiles.resolve(None, DEFAULT_DETECTOR).identity.as_dict()
    assert record.calibration.model == {k: running[k] for k in record.calibration.model}


def test_deployment_verify_checks_the_shipped_report_byte_for_byte(demo_site, tmp_path, capsys):
    args = ["deployment", "verify", str(demo_site.deployment_path), "--authority-pub", str(demo_site.authority_pub)]
    assert main([*args, "--calibration", str(DEMO_CALIBRATION), "--check-models"]) == 0
    assert "sha256 matches the citation" in capsys.readouterr().out
    altered = tmp_path / "altered.json"  # positive control: the same report with its budget loosened
    altered.write_bytes(DEMO_CALIBRATION.read_bytes().replace(b'"text":"1/50"', b'"text":"1/10"'))
    assert altered.read_bytes() != DEMO_CALIBRATION.read_bytes()
    assert main([*args, "--calibration", str(altered)]) == 2
    assert "is not the one deployment DEMO-LFR-0001 cites" in capsys.readouterr().err


def test_the_shipped_evaluation_was_made_with_the_pinned_libraries():
    """Bumping a pin (pyproject.toml) is a release step: re-run the README's calibration command and
    ship its two files. Forgetting the second half fails here, on a fresh clone, before any device
    runs a threshold measured with other arithmetic."""
    from edge_agent.library_pins import scored_versions

    pins = {v.name: v.pinned for v in scored_versions()}
    assert all(pins.values())
    assert json.loads(DEMO_EVALUATION.read_bytes())["libraries"] == pins


def test_the_shipped_report_follows_from_the_shipped_evaluation(tmp_path):
    """Not hard-coded: calibrate re-run on the shipped evaluation report writes the shipped report
    (its creation time aside), and the figures are what the rule gives for the counts it states."""
    report = _shipped()
    assert DEMO_CALIBRATION.read_bytes() == encode_calibration(report)  # version 2, its one spelling
    assert report["evaluation_report_sha256"] == hashlib.sha256(DEMO_EVALUATION.read_bytes()).hexdigest()
    assert report["evaluation_set_sha256"] == json.loads(DEMO_EVALUATION.read_bytes())["dataset"]["content_sha256"]
    out = tmp_path / "again.json"
    assert main(["calibrate", "--evaluation", str(DEMO_EVALUATION), *CALIBRATE_ARGS[:6], "--out", str(out)]) == 0
    again = json.loads(out.read_bytes())
    assert {k: v for k, v in again.items() if k != "created_at"} == {k: v for k, v in report.items() if k != "created_at"}
    # the interval stated honestly: the upper 95 % Wilson bound of the false alerts seen in the searches made
    fpir = report["fpir"]
    assert report["fpir_upper95"] == fpir["ci95"][1] == metrics.wilson_interval(fpir["events"], fpir["trials"])[1] <= report["budget"]["false_alerts_per_face"]
    assert fpir["trials"] == report["nonmated_searches"] and report["model"]["precision"] == "det.int8+float32+emb.int8"


@pytest.mark.devset
def test_the_shipped_calibration_is_what_the_dev_set_gives(devset, tmp_path, monkeypatch):
    """The README's command on the dev set reproduces the shipped report's figures and the evaluation
    it cites. When a model or the vision code changes the figures, this fails: re-run that command
    (README, "Calibrating the threshold") and ship its two files."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "faces-dev").symlink_to(devset)
    out, evaluation = tmp_path / "calibration.json", tmp_path / "evaluation"
    monkeypatch.chdir(data)
    assert main(["calibrate", "--evaluation", "faces-dev", *CALIBRATE_ARGS, "--no-cache", "--out", str(out), "--report-out", str(evaluation)]) == 0

    def findings(doc: dict) -> dict:  # what was measured, not when, by which run or which edit of the code
        return {k: ({m: x for m, x in v.items() if m != "code_sha256"} if k == "model" else v) for k, v in doc.items() if k not in RUN_FIELDS}

    fresh, shipped = json.loads(out.read_bytes()), _shipped()
    assert findings(fresh) == findings(shipped)
    assert fresh["evaluation_report_sha256"] == hashlib.sha256((evaluation / "report.json").read_bytes()).hexdigest()
    made, kept = json.loads((evaluation / "report.json").read_bytes()), json.loads(DEMO_EVALUATION.read_bytes())
    assert made["dataset"] == kept["dataset"] and made["enrolment"] == kept["enrolment"]
    assert findings({"model": made["model"]}) == findings({"model": kept["model"]})
    counts = ("watchlist_size", "mated_probes", "nonmated_probes")
    assert [{k: s[k] for k in counts} for s in made["identification"]["sizes"]] == [{k: s[k] for k in counts} for s in kept["identification"]["sizes"]]


def test_the_readme_states_the_shipped_figures():
    """README "Calibrating the threshold" names the shipped report by its SHA-256 and its threshold,
    interval and searches: remaking the report without updating the README fails here."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    report = _shipped()
    assert hashlib.sha256(DEMO_CALIBRATION.read_bytes()).hexdigest() in readme
    assert f"**{report['recommended_threshold']}**" in readme and f"**{report['nonmated_searches']} non-mated searches**" in readme
    assert f"0 to {report['fpir_upper95']:.4f}" in readme and f"FNIR {report['fnir']['events']} of {report['fnir']['trials']}" in readme
