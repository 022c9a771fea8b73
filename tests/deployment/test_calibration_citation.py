"""A deployment record cites the calibration its threshold rests on (policing.md 9, 17-18).

Real files, real Ed25519 keys, the real calibrate CLI; the end-to-end flow calibrates on part of
the dev set with the real models, then builds, loads and reports on a real watchlist.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from deployment_helpers import write_spec

from edge_agent.cli.main import main
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.canonical import jcs
from edge_agent.crypto.keyfiles import write_public_key
from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, CalibrationCitation, read_calibration_report
from edge_agent.deployment.errors import CalibrationMismatch, ThresholdApprovalMissing
from edge_agent.deployment.policy import (
    authorise,
    check_calibration,
    threshold_evidence,
)
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.errors import ConfigError
from edge_agent.evaluation.calibrate import encode_calibration
from edge_agent.evaluation.dataset import scan_dataset
from edge_agent.identity.keys import load_authority_public
from edge_agent.timestamps import parse_timestamp

GOLDEN = Path(__file__).resolve().parent / "golden"
TESTS = Path(__file__).resolve().parents[1]
# Public halves of the fixed test keys the version 1 golden file was signed with (golden/README.md).
V1_AUTHORITY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
V1_APPROVER = "Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc="


def _pub(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


def _spec(path: Path, **changes) -> Path:
    return write_spec(path, **{"deployment_id": "DEP-CAL-1", "platform": "fixed", **changes})


def _signed(path: Path) -> SignedDeployment:
    return SignedDeployment.load(path)


# --- version 1 records signed before this change -------------------------------------------------


def test_old_v1_signed_record_still_verifies():
    """golden/deployment-v1.signed.json was signed by the version 1 code (before calibration citations)."""
    signed = SignedDeployment.load(GOLDEN / "deployment-v1.signed.json")
    record = signed.verify(_pub(V1_AUTHORITY))
    assert record.version == 1 and record.calibration is None and record.false_alert_budget is None
    assert record.canonical_bytes() == signed.record_bytes
    # its threshold (0.5) rests on the provisional default, so its approval is still needed and still valid
    during = record.start + timedelta(hours=1)
    with pytest.raises(ThresholdApprovalMissing, match="provisional"):
        authorise(signed, _pub(V1_AUTHORITY), "cam-01", during)
    assert authorise(signed, _pub(V1_AUTHORITY), "cam-01", during, [_pub(V1_APPROVER)]) == record
    assert threshold_evidence(record) == {"threshold_basis": "provisional_default", "calibrated_default": CALIBRATED_DEFAULT_THRESHOLD}
    # a version 1 record cannot carry a calibration section
    doc = json.loads(signed.record_bytes)
    doc["calibration"] = {"basis": "provisional_default", "default_threshold": 0.55}
    with pytest.raises(ConfigError, match="unknown fields calibration"):
        DeploymentRecord.from_json(doc)


def test_old_v2_signed_record_still_verifies_and_keeps_its_domains(tmp_path, capsys):
    """golden/deployment-v2.signed.json was signed by the version 2 code (canonical_json, domain
    ``deployment v1``, signed-file version 1): it keeps verifying, approved, through the API and the CLI."""
    path = GOLDEN / "deployment-v2.signed.json"
    signed = SignedDeployment.load(path)
    assert signed.to_bytes() + b"\n" == path.read_bytes()  # re-written exactly as signed (signed-file version 1)
    record = signed.verify(_pub(V1_AUTHORITY))
    assert (record.version, record.calibration.threshold, record.alert_threshold) == (2, 0.5812, 0.57)
    assert record.canonical_bytes() == signed.record_bytes
    during = record.start + timedelta(hours=1)
    with pytest.raises(ThresholdApprovalMissing):
        authorise(signed, _pub(V1_AUTHORITY), "cam-01", during, model_identity=record.calibration.model)
    assert authorise(signed, _pub(V1_AUTHORITY), "cam-01", during, [_pub(V1_APPROVER)], model_identity=record.calibration.model) == record
    write_public_key(tmp_path / "authority.pub", _pub(V1_AUTHORITY))
    write_public_key(tmp_path / "approver.pub", _pub(V1_APPROVER))
    capsys.readouterr()
    assert main(["deployment", "verify", str(path), "--authority-pub", str(tmp_path / "authority.pub"),
                 "--approver-pub", str(tmp_path / "approver.pub")]) == 0
    assert "record version 2" in capsys.readouterr().out


def test_old_v1_record_verifies_through_the_cli(tmp_path, capsys):
    write_public_key(tmp_path / "authority.pub", _pub(V1_AUTHORITY))
    write_public_key(tmp_path / "approver.pub", _pub(V1_APPROVER))
    path = GOLDEN / "deployment-v1.signed.json"
    assert main(["deployment", "verify", str(path), "--authority-pub", str(tmp_path / "authority.pub"),
                 "--approver-pub", str(tmp_path / "approver.pub")]) == 0
    captured = capsys.readouterr()
    assert "record version 1" in captured.out and "threshold approval: valid" in captured.out
    assert "cites no calibration" in captured.err and "provisional default" in captured.err


# --- the calibrate CLI's report, cited ------------------------------------------------------------


@pytest.fixture()
def synthetic_report(tmp_path, monkeypatch):
    """A calibration report written by the real calibrate CLI from a synthetic evaluation (its model
    hashes are made up, so it can never match the bundled models)."""
    monkeypatch.syspath_prepend(str(TESTS / "evaluation"))
    from eval_synthetic import make_set

    from edge_agent.cli.evaluate import write_outputs
    from edge_agent.evaluation.analysis import EvaluationSettings, analyse
    from edge_agent.evaluation.runner import embed_dataset

    model = {"detector_sha256": "d" * 64, "aligner": "test", "embedder_sha256": "e" * 64}
    synthetic = make_set(tmp_path / "set", [3] * 30 + [1] * 300)
    embedded = embed_dataset(synthetic.dataset, synthetic.embed, synthetic.embed, model)
    info = {"root": "set", "content_sha256": synthetic.dataset.content_sha256()}
    evaluation = analyse(embedded, None, EvaluationSettings(watchlist_sizes=(20,)), info, datetime.now(timezone.utc))
    json_path, _, _ = write_outputs(evaluation, tmp_path / "ev", None)
    out = tmp_path / "calibration.json"
    assert main(["calibrate", "--evaluation", str(json_path), "--watchlist-size", "10", "--footfall", "1000",
                 "--budget", "1/20", "--out", str(out)]) == 0
    return out


def test_citation_carries_the_report_hash_and_figures(synthetic_report):
    report = json.loads(synthetic_report.read_text())
    citation = read_calibration_report(synthetic_report)
    assert citation.report_sha256 == hashlib.sha256(synthetic_report.read_bytes()).hexdigest()
    assert citation.threshold == report["recommended_threshold"] and citation.fpir_upper95 == report["fpir"]["ci95"][1]
    assert (citation.budget, citation.budget_text) == (0.05, "1/20")
    assert citation.watchlist_size == 10 and citation.evaluated_watchlist_size == 20
    assert (citation.nonmated_searches, citation.mated_searches) == (report["nonmated_searches"], report["mated_searches"])
    assert citation.evaluation_set_sha256 == report["evaluation_set_sha256"] is not None
    assert citation.model == {"detector_sha256": "d" * 64, "aligner": "test", "embedder_sha256": "e" * 64}
    assert citation.matches_file(synthetic_report)


def test_create_refuses_a_calibration_made_with_other_models(synthetic_report, tmp_path, capsys):
    """The synthetic report's model hashes differ from the bundled models the devices run."""
    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    capsys.readouterr()
    code = main(["deployment", "create", "--spec", str(_spec(tmp_path / "spec.json")), "--calibration", str(synthetic_report),
                 "--authority-key", str(tmp_path / "auth"), "--out", str(tmp_path / "dep.json")])
    err = capsys.readouterr().err
    assert code == 2 and "made with other models" in err and "hint:" in err
    assert "aligner" in err and "detector_sha256" in err and "embedder_sha256" in err
    assert not (tmp_path / "dep.json").exists()


def test_create_refuses_a_larger_cap_or_tighter_budget_than_calibrated(synthetic_report, tmp_path, capsys):
    """Checked before the models, so the synthetic report shows both refusals through the CLI."""
    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    cases = [({"watchlist_cap": 11}, "holds only for 10"),
             ({"false_alert_budget": "1/21"}, "looser 0.05 (1/20)")]
    for changes, message in cases:
        capsys.readouterr()
        code = main(["deployment", "create", "--spec", str(_spec(tmp_path / "spec.json", **changes)), "--calibration", str(synthetic_report),
                     "--authority-key", str(tmp_path / "auth"), "--out", str(tmp_path / "dep.json")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "hint:" in err, err
        assert not (tmp_path / "dep.json").exists()


def test_policy_refuses_a_signed_record_whose_citation_does_not_fit(synthetic_report):
    """The same rules hold on a record that reached a device however it was made."""
    citation = read_calibration_report(synthetic_report)
    spec = json.loads(_spec(synthetic_report.parent / "spec.json").read_text())
    base = DeploymentRecord.from_json(spec, fill_defaults=True)
    fits = DeploymentRecord.from_json({**spec, "false_alert_budget": 0.05}, fill_defaults=True)
    check_calibration(_with(fits, citation), citation.model)
    for record, message in (
        (_with(base, citation, watchlist_cap=11), "holds only for"),
        (_with(fits, citation, false_alert_budget=0.04), "looser"),
    ):
        with pytest.raises(CalibrationMismatch, match=message):
            check_calibration(record, None)
    with pytest.raises(CalibrationMismatch, match="embedder_sha256"):
        check_calibration(_with(fits, citation), {**citation.model, "embedder_sha256": "0" * 64})


def _with(record: DeploymentRecord, citation: CalibrationCitation, **changes) -> DeploymentRecord:
    return dataclasses.replace(record, calibration=citation, **changes)


def test_reports_that_cannot_be_cited_are_refused(synthetic_report, tmp_path):
    doc = json.loads(synthetic_report.read_text())
    cases = [
        ({**doc, "recommended_threshold": None, "reason": "too few searches"}, "recommends no threshold"),
        ({k: v for k, v in doc.items() if k not in ("tool_version", "mated_searches")}, "lacks tool_version, mated_searches"),
        ({**doc, "format": "edge-agent-evaluation"}, "is not a calibration report"),
        ({**doc, "evaluation_report_sha256": "not-a-hash"}, "not a lower-case hex SHA-256"),
    ]
    for bad, message in cases:
        path = tmp_path / "bad.json"
        path.write_bytes(encode_calibration(bad))
        with pytest.raises(ConfigError, match=message):
            read_calibration_report(path)
    # version 2 has one spelling, so one SHA-256: the same report re-indented, re-ordered or without its line feed is refused
    for spelling in (json.dumps(doc, indent=1).encode() + b"\n", json.dumps(doc).encode(), encode_calibration(doc)[:-1]):
        path.write_bytes(spelling)
        with pytest.raises(ConfigError, match="not in its one spelling"):
            read_calibration_report(path)
    path.write_bytes(encode_calibration(doc))
    assert read_calibration_report(path).report_sha256 == hashlib.sha256(synthetic_report.read_bytes()).hexdigest()


def test_calibrate_writes_version_2_as_its_one_spelling(synthetic_report):
    """The file calibrate writes is exactly jcs(report) + LF, with the one timestamp form: what docs/formats/calibration.md defines."""
    data = synthetic_report.read_bytes()
    doc = json.loads(data)
    assert doc["version"] == 2 and data == jcs(doc) + b"\n"
    assert parse_timestamp(doc["created_at"])


def test_version_1_calibration_report_is_still_cited():
    """golden/calibration-v1.json was written by the version 1 calibrate (indented JSON); it is hashed as it is."""
    path = GOLDEN / "calibration-v1.json"
    doc = json.loads(path.read_bytes())
    assert doc["version"] == 1 and path.read_bytes() != encode_calibration(doc)
    citation = read_calibration_report(path)
    assert citation.report_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (citation.threshold, citation.created_at, citation.budget_text) == (0.788, "2026-11-22T12:00:00+00:00", "1/20")


def test_a_spec_cannot_write_its_own_calibration_section(tmp_path, capsys):
    spec = _spec(tmp_path / "spec.json", calibration={"basis": "provisional_default", "default_threshold": 0.3})
    assert main(["deployment", "create", "--spec", str(spec), "--out", str(tmp_path / "dep.json")]) == 2
    assert "cite the report file instead" in capsys.readouterr().err


def test_without_a_calibration_the_record_says_provisional_and_show_warns(tmp_path, capsys):
    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    capsys.readouterr()
    assert main(["deployment", "create", "--spec", str(_spec(tmp_path / "spec.json", false_alert_budget="1/6000")),
                 "--authority-key", str(tmp_path / "auth"), "--out", str(tmp_path / "dep.json")]) == 0
    assert "warning:" in capsys.readouterr().err
    doc = json.loads(_signed(tmp_path / "dep.json").record_bytes)
    assert doc["version"] == 3
    assert doc["calibration"] == {"basis": "provisional_default", "default_threshold": CALIBRATED_DEFAULT_THRESHOLD}
    assert doc["false_alert_budget"] == 1 / 6000
    assert main(["deployment", "show", str(tmp_path / "dep.json"), "--authority-pub", str(tmp_path / "auth")]) == 0
    assert "warning:" in capsys.readouterr().out
    code = main(["deployment", "verify", str(tmp_path / "dep.json"), "--authority-pub", str(tmp_path / "auth"),
                 "--calibration", str(tmp_path / "spec.json")])
    assert code == 2 and "cites no calibration report" in capsys.readouterr().err


# --- end to end with the real models on the dev set -----------------------------------------------


@pytest.fixture(scope="module")
def real_calibration(devset, tmp_path_factory):
    """The real calibrate CLI on 30 dev-set identities (about 60 images, a few seconds), real models."""
    tmp = tmp_path_factory.mktemp("real-calibration")
    subset = tmp / "set"
    for folder in sorted(p for p in devset.iterdir() if p.is_dir())[:30]:
        (subset / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (subset / folder.name / image.name).symlink_to(image)
    out = tmp / "calibration.json"
    assert main(["calibrate", "--evaluation", str(subset), "--watchlist-size", "10", "--footfall", "2000", "--budget", "1/4",
                 "--out", str(out), "--report-out", str(tmp / "evaluation"), "--no-cache", "--detector", "both"]) == 0
    return {"report": out, "subset": subset, "evaluation": tmp / "evaluation" / "report.json"}


@pytest.fixture()
def site(tmp_path, fixtures_dir):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("obama_1.jpg", "biden_1.jpg"):
        shutil.copy(fixtures_dir / "faces" / name, images / name)
    (tmp_path / "subjects.csv").write_text(
        "subject_ref,category,image,image_source,legal_basis,image_date,last_review_date,under_18,under_18_justification\n"
        "CASE-0001,wanted_by_court,obama_1.jpg,custody image,Warrant WX-1,2024-01-05,2026-10-01,no,\n"
        "CASE-0002,suspect,biden_1.jpg,custody image,PACE s64A,2024-01-05,2026-10-01,no,\n"
    )
    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    assert main(["keys", "init-approver", str(tmp_path / "appr")]) == 0
    assert main(["keys", "init-device", "--id", "cam-01", str(tmp_path / "dev"), "--registry", str(tmp_path / "registry.json")]) == 0
    return tmp_path


@pytest.mark.devset
def test_real_calibration_is_cited_verified_loaded_audited_and_reported(real_calibration, site, capsys):
    t, report_path = site, real_calibration["report"]
    report = json.loads(report_path.read_text())
    assert report["evaluation_set_sha256"] == scan_dataset(real_calibration["subset"]).content_sha256()
    assert report["evaluation_report_sha256"] == hashlib.sha256(real_calibration["evaluation"].read_bytes()).hexdigest()
    calibrated = report["recommended_threshold"]
    sha = hashlib.sha256(report_path.read_bytes()).hexdigest()
    capsys.readouterr()

    assert main(["deployment", "create", "--spec", str(_spec(t / "spec.json", false_alert_budget="1/4")), "--calibration", str(report_path),
                 "--authority-key", str(t / "auth"), "--out", str(t / "dep.json")]) == 0
    assert f"calibration sha256 {sha}" in capsys.readouterr().out
    record = _signed(t / "dep.json").verify(_authority_pub(t))
    section = json.loads(_signed(t / "dep.json").record_bytes)["calibration"]
    assert section["basis"] == "calibration_report" and section["report_sha256"] == sha
    assert section["threshold"] == calibrated and section["fpir_upper95"] == report["fpir_upper95"]
    assert section["budget_text"] == "1/4" and section["watchlist_size"] == 10
    assert (section["nonmated_searches"], section["mated_searches"]) == (report["nonmated_searches"], report["mated_searches"])
    assert section["model"] == {k: report["model"][k] for k in ("detector_sha256", "aligner", "embedder_sha256")}
    assert section["evaluation_set_sha256"] == report["evaluation_set_sha256"] and section["tool_version"] == report["tool_version"]
    assert record.calibration.report_sha256 == sha

    # show and verify (with the report, and against the device's models) name it
    assert main(["deployment", "show", str(t / "dep.json"), "--authority-pub", str(t / "auth")]) == 0
    assert sha in capsys.readouterr().out
    assert main(["deployment", "verify", str(t / "dep.json"), "--authority-pub", str(t / "auth"), "--calibration", str(report_path),
                 "--check-models"]) == 0
    assert "sha256 matches the citation" in capsys.readouterr().out

    # the report altered after it was cited (a looser budget written in): detected by its hash
    tampered = t / "tampered.json"
    tampered.write_text(report_path.read_text().replace('"text":"1/4"', '"text":"1/2"'))
    assert tampered.read_bytes() != report_path.read_bytes()
    assert main(["deployment", "verify", str(t / "dep.json"), "--authority-pub", str(t / "auth"), "--calibration", str(tampered)]) == 2
    err = capsys.readouterr().err
    assert "is not the one deployment DEP-CAL-1 cites" in err and sha in err and "hint:" in err

    # device side: load checks the calibration against the models it runs, prints and audits it
    assert main(["watchlist", "build", "--deployment", str(t / "dep.json"), "--subjects", str(t / "subjects.csv"), "--images", str(t / "images"),
                 "--for-device", "cam-01", "--registry", str(t / "registry.json"), "--authority-key", str(t / "auth"), "--out", str(t / "wl.eawl")]) == 0
    capsys.readouterr()
    assert main(["watchlist", "load", "--state-dir", str(t / "state"), "--device-keys", str(t / "dev"), "--package", str(t / "wl.eawl"),
                 "--authority-pub", str(t / "auth" / "authority_ed25519.pub")]) == 0
    assert f"rests on calibration sha256 {sha}" in capsys.readouterr().out
    audit_log = t / "state" / "audit.log"
    loaded = [json.loads(line) for line in audit_log.read_text().splitlines() if json.loads(line)["kind"] == "watchlist_loaded"]
    assert loaded[0]["details"]["calibration_sha256"] == sha and loaded[0]["details"]["calibrated_default"] == calibrated

    # the deployment report shows the cited calibration, from the verified device log
    with AlertStore(t / "alerts.sqlite"):
        pass
    assert main(["report", "--deployment", "DEP-CAL-1", "--audit", str(audit_log), "--audit-pub", str(t / "dev"),
                 "--alerts-db", str(t / "alerts.sqlite"), "--out", str(t / "report")]) == 0
    dep_report = json.loads((t / "report" / "deployment-report.json").read_text())
    [evidence] = dep_report["threshold_evidence"]
    assert evidence["calibration_sha256"] == sha and evidence["threshold_basis"] == "calibration_report"
    assert evidence["calibration_fpir_upper95"] == report["fpir_upper95"] and evidence["devices"] == [loaded[0]["actor"]]
    assert not any("provisional" in note for note in dep_report["notes"])
    assert sha in (t / "report" / "deployment-report.html").read_text()


@pytest.mark.devset
def test_real_calibration_refusals(real_calibration, site, capsys):
    t, report_path = site, real_calibration["report"]
    calibrated = json.loads(report_path.read_text())["recommended_threshold"]

    def create(out: str, *extra: str, **spec) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["deployment", "create", "--spec", str(_spec(t / f"{out}.spec.json", **spec)), "--calibration", str(report_path),
                     "--authority-key", str(t / "auth"), "--out", str(t / out), *extra])
        return code, capsys.readouterr().err

    code, err = create("models.json", "--detector", "full")  # devices running only the full-range detector
    assert code == 2 and "made with other models (detector_sha256" in err
    code, err = create("cap.json", watchlist_cap=11)
    assert code == 2 and "holds only for 10" in err
    code, err = create("budget.json", false_alert_budget="1/5")
    assert code == 2 and "looser 0.25 (1/4)" in err
    for name in ("models.json", "cap.json", "budget.json"):
        assert not (t / name).exists()

    # below the calibrated threshold: created, but refused everywhere until a pinned approver signs
    low = round(calibrated - 0.01, 4)
    code, _ = create("low.json", alert_threshold=low)
    assert code == 0
    assert main(["deployment", "verify", str(t / "low.json"), "--authority-pub", str(t / "auth")]) == 2
    assert "no pinned approver signed it" in capsys.readouterr().err
    with pytest.raises(ThresholdApprovalMissing, match="of its cited calibration"):
        authorise(_signed(t / "low.json"), _authority_pub(t), "cam-01", datetime.now(timezone.utc))
    assert main(["deployment", "approve", str(t / "low.json"), "--approver-key", str(t / "appr")]) == 0
    assert main(["deployment", "verify", str(t / "low.json"), "--authority-pub", str(t / "auth"),
                 "--approver-pub", str(t / "appr" / "approver_ed25519.pub")]) == 0
    # at the calibrated threshold no approval is needed, although it is below the provisional default
    assert calibrated < CALIBRATED_DEFAULT_THRESHOLD
    code, _ = create("at.json", alert_threshold=calibrated)
    assert code == 0
    assert authorise(_signed(t / "at.json"), _authority_pub(t), "cam-01", datetime.now(timezone.utc)).alert_threshold == calibrated


def _authority_pub(t: Path) -> Ed25519PublicKey:
    return load_authority_public(t / "auth")
