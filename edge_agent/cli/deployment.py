"""``edge-agent deployment``: author, sign, approve, inspect and verify deployment records.

``create --calibration REPORT`` cites the calibration the threshold rests on; it is refused unless
the report fits the deployment (same models as the device runs, watchlist cap within the size
calibrated for, budget no looser than the authorised one). ``verify --calibration REPORT``
re-checks a cited report byte for byte.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, read_calibration_report
from edge_agent.deployment.policy import (
    calibrated_default,
    check_calibration,
    check_record,
    cited_calibration,
    describe_threshold,
    needs_threshold_approval,
)
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.durable import atomic_write
from edge_agent.errors import ConfigError, EdgeAgentError, SecurityError
from edge_agent.identity.keys import load_approver_key, load_approver_public, load_authority_key, load_authority_public
from edge_agent.safe_load import json_loads
from edge_agent.vision.identity import DEFAULT_DETECTOR, DETECTOR_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    dep = subparsers.add_parser("deployment", help="deployment records: the signed authority to match")
    sub = dep.add_subparsers(dest="deployment_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="validate a JSON spec into a record (signed at once with --authority-key)")
    p.add_argument("--spec", type=Path, required=True, help="JSON object with the fields in docs/formats/deployment.md")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--authority-key", type=Path, help="sign now (authority key file or directory)")
    p.add_argument("--calibration", type=Path, help="calibration report (edge-agent calibrate --out) the threshold rests on")
    _add_model_options(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("sign", help="sign a record created without --authority-key")
    p.add_argument("record", type=Path)
    p.add_argument("--authority-key", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("approve", help=f"add an approver's signature (needed below the calibrated default: the cited calibration's threshold, else {CALIBRATED_DEFAULT_THRESHOLD})")
    p.add_argument("deployment", type=Path)
    p.add_argument("--approver-key", type=Path, required=True)
    p.add_argument("--out", type=Path, help="default: update the file in place")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("show", help="print a signed deployment and check it")
    p.add_argument("deployment", type=Path)
    p.add_argument("--authority-pub", type=Path, help="verify the authority signature with this public key")
    p.add_argument("--approver-pub", type=Path, action="append", default=[], help="pinned approver public key (repeatable)")
    p.add_argument("--device", help="also check the record lets this device match now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("verify", help="verify a signed deployment: signature, approval, and the calibration it cites")
    p.add_argument("deployment", type=Path)
    p.add_argument("--authority-pub", type=Path, required=True, help="pinned authority public key")
    p.add_argument("--approver-pub", type=Path, action="append", default=[], help="pinned approver public key (repeatable)")
    p.add_argument("--calibration", type=Path, help="the cited calibration report: refused unless it is byte for byte the one cited")
    p.add_argument("--check-models", action="store_true", help="also check the cited calibration's models against --models/--detector")
    _add_model_options(p)
    p.set_defaults(func=cmd_verify)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, help="models folder the devices run (default: the bundled models)")
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR,
                        help=f"the devices' detector.model (default {DEFAULT_DETECTOR}); a calibration holds only for the same models")


def _device_models(args: argparse.Namespace) -> dict[str, str]:
    from edge_agent.vision.core import ModelFiles

    return ModelFiles.resolve(args.models, args.detector).identity.as_dict()


def _spec_record(path: Path) -> DeploymentRecord:
    """The spec as a record: ``false_alert_budget`` may be written like 1/6000; a calibration only comes from --calibration."""
    doc = _read_json(path)
    if isinstance(doc, dict):
        if "calibration" in doc:
            raise ConfigError(f"{path} states a calibration section", "cite the report file instead: deployment create --calibration REPORT")
        budget = doc.get("false_alert_budget")
        if isinstance(budget, str):
            from edge_agent.evaluation.calibrate import parse_budget

            doc = {**doc, "false_alert_budget": parse_budget(budget).rate}
    return DeploymentRecord.from_json(doc, fill_defaults=True)


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} already exists", "choose another --out; signed records are not overwritten") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_json(path: Path) -> object:
    try:
        return json_loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found", "check the path") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", "fix the file") from None


def cmd_create(args: argparse.Namespace) -> int:
    record = _spec_record(args.spec)
    if args.calibration:
        record = dataclasses.replace(record, calibration=read_calibration_report(args.calibration))
        check_calibration(record, _device_models(args))
    if args.authority_key:
        signed = SignedDeployment.sign(record, load_authority_key(args.authority_key))
        _write_new(args.out, signed.to_bytes() + b"\n")
        print(f"signed deployment {record.deployment_id} -> {args.out}")
    else:
        _write_new(args.out, record.canonical_bytes() + b"\n")
        print(f"deployment record {record.deployment_id} -> {args.out} (unsigned; run: edge-agent deployment sign)")
    _print_threshold(record)
    if needs_threshold_approval(record):
        print(f"note: threshold {record.alert_threshold} < calibrated default {calibrated_default(record)}: an approver must sign (edge-agent deployment approve)")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    record = DeploymentRecord.from_json(_read_json(args.record))
    check_calibration(record, None)
    signed = SignedDeployment.sign(record, load_authority_key(args.authority_key))
    _write_new(args.out, signed.to_bytes() + b"\n")
    print(f"signed deployment {record.deployment_id} -> {args.out}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    signed = SignedDeployment.load(args.deployment)
    record = signed.unverified_record()
    approved = signed.approve(load_approver_key(args.approver_key))
    out = args.out or args.deployment
    atomic_write(out, approved.to_bytes() + b"\n", 0o644)
    print(f"approved deployment {record.deployment_id} (threshold {record.alert_threshold}) -> {out}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    signed = SignedDeployment.load(args.deployment)
    checks: list[str] = []
    status = 0
    if args.authority_pub:
        authority_pub = load_authority_public(args.authority_pub)
        record = signed.verify(authority_pub)
        checks.append("authority signature: valid")
        approvers = [load_approver_public(p) for p in args.approver_pub]
        approved = signed.threshold_approved(approvers, authority_pub)
        if needs_threshold_approval(record):
            checks.append(f"threshold approval: {'valid' if approved else 'MISSING (record will be refused)'}")
            status = 0 if approved else 1
        if args.device:
            try:
                check_record(record, args.device, datetime.now(timezone.utc), approved)
                checks.append(f"device {args.device}: authorised now")
            except EdgeAgentError as exc:
                checks.append(f"device {args.device}: REFUSED: {exc.message}")
                status = 1
    else:
        record = signed.unverified_record()
        checks.append("authority signature: NOT CHECKED (pass --authority-pub)")
    checks.append(describe_threshold(record))
    doc = record.to_json()
    if args.json:
        print(json.dumps({"record": doc, "approvals": len(signed.approvals), "checks": checks}, indent=2))
    else:
        width = max(len(k) for k in doc)
        for key, value in doc.items():
            print(f"{key:<{width}}  {value}")
        print(f"{'approvals':<{width}}  {len(signed.approvals)}")
        for line in checks:
            print(line)
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    """Every check or a refusal with its reason: exit 0 only when the record and its evidence hold."""
    signed = SignedDeployment.load(args.deployment)
    authority_pub = load_authority_public(args.authority_pub)
    record = signed.verify(authority_pub)
    print(f"deployment {record.deployment_id} (record version {record.version}): authority signature valid")
    if needs_threshold_approval(record):
        if not signed.threshold_approved([load_approver_public(p) for p in args.approver_pub], authority_pub):
            raise SecurityError(
                f"threshold {record.alert_threshold} is below the calibrated default {calibrated_default(record)} and no pinned approver signed it",
                "pass the approver's --approver-pub, or have an approver sign: edge-agent deployment approve",
            )
        print(f"threshold approval: valid (threshold {record.alert_threshold} < calibrated default {calibrated_default(record)})")
    citation = cited_calibration(record)
    check_calibration(record, _device_models(args) if args.check_models else None)
    if args.calibration is not None:
        if citation is None:
            raise ConfigError(f"deployment {record.deployment_id} cites no calibration report, so {args.calibration} cannot be checked against it",
                              "its threshold rests on the provisional default; issue a record with deployment create --calibration")
        if not citation.matches_file(args.calibration):
            raise SecurityError(
                f"calibration report {args.calibration} is not the one deployment {record.deployment_id} cites "
                f"(sha256 differs from {citation.report_sha256}): it was altered, or it is another report",
                "obtain the exact report file the deployment was created with",
            )
        print(f"calibration report {args.calibration}: sha256 matches the citation")
    _print_threshold(record)
    return 0


def _print_threshold(record: DeploymentRecord) -> None:
    """The threshold's evidence on stdout, or the provisional-default warning on stderr."""
    print(describe_threshold(record), file=sys.stdout if cited_calibration(record) is not None else sys.stderr)
