"""Issue 10.1: no matching without authority. ``edge-agent search`` refuses without a signed RFR or
OIFR deployment and the sealed watchlist built for it, opened for this device; every refusal is
audited, and a refused search never reaches the watchlist's templates."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from datetime import timedelta

import pytest
from search_helpers import build_site
from deployment_helpers import write_spec

from edge_agent.agent.runner import check_mode
from edge_agent.cli.main import main
from edge_agent.crypto.canonical import jcs
from edge_agent.errors import ConfigError


def _refused(site, capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    return capsys.readouterr().err


def test_a_gallery_folder_is_no_authority(rfr_site, fixtures_dir, capsys):
    """The old invocation (any folder of photos as the gallery, no deployment) no longer runs."""
    photo = fixtures_dir / "faces" / "obama_2.jpg"
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--gallery", str(rfr_site.root / "images"), str(photo)])
    assert exit_info.value.code == 2
    assert "--deployment" in capsys.readouterr().err


def test_an_lfr_deployment_does_not_authorise_a_search(tmp_path, fixtures_dir, capsys):
    site = build_site(tmp_path / "lfr", fixtures_dir, deployment_id="DEP-LFR-0001", mode="LFR", platform="fixed")
    err = _refused(site, capsys, site.args(fixtures_dir / "faces" / "obama_2.jpg"))
    assert "is LFR (live)" in err and "hint:" in err and "RFR" in err
    # Refused before the watchlist is opened: no watchlist_loaded, one search_refused naming the input.
    assert site.kinds() == ["search_refused"]
    refusal = site.last("search_refused")
    assert refusal["reason"] == "SearchRefused"
    assert refusal["input_sha256"] == hashlib.sha256((fixtures_dir / "faces" / "obama_2.jpg").read_bytes()).hexdigest()


def test_a_deployment_that_has_not_started_is_refused(tmp_path, fixtures_dir, capsys):
    from datetime import datetime, timezone

    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    z = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    site = build_site(tmp_path / "later", fixtures_dir, start=z(soon), end=z(soon + timedelta(hours=4)))
    err = _refused(site, capsys, site.args(fixtures_dir / "faces" / "obama_2.jpg"))
    assert "valid from" in err and "hint:" in err
    assert site.kinds() == ["watchlist_refused"]
    assert site.last("watchlist_refused")["reason"] == "WatchlistNotYetValid"


def test_an_expired_deployment_is_refused_and_its_watchlist_destroyed(rfr_site, fixtures_dir, tmp_path, core):
    """Past the deployment's end (a clock moved on): the same verifying loader refuses, audited, and
    the package handed to the search is destroyed, as the agent destroys a pushed one (policing.md 4)."""
    from edge_agent.audit.log import AuditLog
    from edge_agent.crypto.canonical import parse_utc
    from edge_agent.identity.keys import load_authority_public, load_device_keys
    from edge_agent.search.authority import open_for_search
    from edge_agent.watchlist.loader import DeviceTrust
    from edge_agent.search.inputs import open_input
    from edge_agent.watchlist.errors import WatchlistExpired, WrongDevice

    package = tmp_path / "handed-over.eawl"
    shutil.copy(rfr_site.watchlist, package)
    record = json.loads(base64.b64decode(json.loads(rfr_site.deployment.read_text())["record"]))
    after_end = parse_utc(record["end"], "end") + timedelta(seconds=1)
    with AuditLog.open(tmp_path / "audit.log", None, "operator:dc-4411") as audit:
        with pytest.raises(WatchlistExpired, match="expired.*has been destroyed"):
            open_for_search(
                rfr_site.deployment, package, open_input(fixtures_dir / "faces" / "obama_2.jpg"),
                DeviceTrust(load_device_keys(rfr_site.root / "keys" / "cam-01"), load_authority_public(rfr_site.root / "auth"), core.identity),
                after_end, audit,
            )
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["watchlist_refused", "deployment_ended", "watchlist_wiped"]
    assert records[0]["details"]["reason"] == "WatchlistExpired" and records[2]["details"]["deployment_id"] == "DEP-RFR-0007"
    assert not package.exists() and rfr_site.watchlist.exists()
    # before the end nothing is destroyed: a refusal for another reason (another device) leaves the file
    shutil.copy(rfr_site.watchlist, package)
    with AuditLog.open(tmp_path / "audit2.log", None, "operator:dc-4411") as audit, pytest.raises(WrongDevice):
        open_for_search(rfr_site.deployment, package, open_input(fixtures_dir / "faces" / "obama_2.jpg"),
                        DeviceTrust(load_device_keys(rfr_site.root / "keys" / "cam-02"), load_authority_public(rfr_site.root / "auth"), core.identity),
                        after_end - timedelta(hours=1), audit)
    assert package.exists()


def test_a_device_the_watchlist_was_not_sealed_to_cannot_search(site_copy, fixtures_dir, capsys):
    """cam-02 is named in the deployment but the watchlist was sealed to cam-01 only."""
    err = _refused(site_copy, capsys, site_copy.args(fixtures_dir / "faces" / "obama_2.jpg", device="cam-02"))
    assert "not issued to device 'cam-02'" in err
    assert site_copy.kinds() == ["watchlist_refused"] and site_copy.last("watchlist_refused")["reason"] == "WrongDevice"


def test_a_tampered_watchlist_is_refused(site_copy, fixtures_dir, tmp_path, capsys):
    data = bytearray(site_copy.watchlist.read_bytes())
    data[len(data) // 2] ^= 1
    tampered = tmp_path / "tampered.eawl"
    tampered.write_bytes(bytes(data))
    err = _refused(site_copy, capsys, site_copy.args(fixtures_dir / "faces" / "obama_2.jpg", watchlist=tampered))
    assert "signature is not valid" in err
    refusal = site_copy.last("watchlist_refused")
    assert refusal["reason"] == "PackageTampered" and refusal["package_sha256"] == hashlib.sha256(bytes(data)).hexdigest()


def test_a_tampered_deployment_record_is_refused(site_copy, fixtures_dir, tmp_path, capsys):
    doc = json.loads(site_copy.deployment.read_text())
    record = base64.b64decode(doc["record"]).replace(b'"alert_threshold":0.6', b'"alert_threshold":0.3')
    doc["record"] = base64.b64encode(record).decode()
    edited = tmp_path / "edited.json"
    edited.write_bytes(jcs(doc) + b"\n")  # the signed file's one spelling (signed-file version 2): only the record is edited
    err = _refused(site_copy, capsys, site_copy.args(fixtures_dir / "faces" / "obama_2.jpg", deployment=edited))
    assert "signature is not valid" in err
    assert site_copy.kinds() == ["search_refused"] and site_copy.last("search_refused")["reason"] == "DeploymentRefused"


def test_a_watchlist_built_for_another_deployment_is_refused(site_copy, tmp_path, fixtures_dir, capsys):
    """A valid RFR record from the same authority, but not the one the watchlist is bound to."""
    second = tmp_path / "second.json"
    spec = write_spec(tmp_path / "spec2.json", deployment_id="DEP-RFR-0009", mode="RFR", platform="central", device_ids=["cam-01"])
    assert main(["deployment", "create", "--spec", str(spec), "--authority-key", str(site_copy.root / "auth"), "--out", str(second)]) == 0
    err = _refused(site_copy, capsys, site_copy.args(fixtures_dir / "faces" / "obama_2.jpg", deployment=second))
    assert "bound to a different deployment record" in err
    assert site_copy.last("watchlist_refused")["reason"] == "DeploymentMismatch"


def test_an_oifr_deployment_searches_one_still_not_a_folder(tmp_path, fixtures_dir, capsys):
    site = build_site(tmp_path / "oifr", fixtures_dir, deployment_id="DEP-OIFR-0001", mode="OIFR", platform="handheld")
    err = _refused(site, capsys, site.args(fixtures_dir / "faces"))
    assert "OIFR (operator-initiated)" in err and "not a folder" in err
    assert site.last("search_refused")["reason"] == "SearchRefused"
    capsys.readouterr()
    assert main(site.args(fixtures_dir / "faces" / "obama_2.jpg", "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "OIFR" and [c["subject_ref"] for c in out["results"][0]["candidates"]] == ["CASE-0001"]


def test_the_agent_sends_oifr_users_to_the_search_with_its_authority():
    with pytest.raises(ConfigError) as refused:
        check_mode("OIFR", "/dev/video0", "live")
    hint = refused.value.hint
    assert "edge-agent search" in hint and "--deployment" in hint and "--watchlist" in hint and "--audit-log" in hint
    # the hint's flags are the command's own
    from edge_agent.cli.main import build_parser

    search = build_parser()._subparsers._group_actions[0].choices["search"]  # type: ignore[union-attr]
    flags = {s for a in search._actions for s in a.option_strings}
    assert {w for w in hint.split() if w.startswith("--")} <= flags
