"""``edge-agent deployment``: author, sign, approve and inspect deployment records."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from edge_agent.crypto.canonical import canonical_json
from edge_agent.deployment.policy import CALIBRATED_DEFAULT_THRESHOLD, check_record, needs_threshold_approval
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.identity.keys import load_approver_key, load_approver_public, load_authority_key, load_authority_public


def register(subparsers: argparse._SubParsersAction) -> None:
    dep = subparsers.add_parser("deployment", help="deployment records: the signed authority to match")
    sub = dep.add_subparsers(dest="deployment_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="validate a JSON spec into a record (signed at once with --authority-key)")
    p.add_argument("--spec", type=Path, required=True, help="JSON object with the fields in docs/formats/deployment.md")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--authority-key", type=Path, help="sign now (authority key file or directory)")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("sign", help="sign a record created without --authority-key")
    p.add_argument("record", type=Path)
    p.add_argument("--authority-key", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("approve", help=f"add an approver's signature (needed when the threshold is below {CALIBRATED_DEFAULT_THRESHOLD})")
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


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} already exists", "choose another --out; signed records are not overwritten") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_record(path: Path, fill_defaults: bool) -> DeploymentRecord:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found", "check the path") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", "fix the file") from None
    return DeploymentRecord.from_json(doc, fill_defaults=fill_defaults)


def cmd_create(args: argparse.Namespace) -> int:
    record = _read_record(args.spec, fill_defaults=True)
    if args.authority_key:
        signed = SignedDeployment.sign(record, load_authority_key(args.authority_key))
        _write_new(args.out, signed.to_bytes() + b"\n")
        print(f"signed deployment {record.deployment_id} -> {args.out}")
    else:
        _write_new(args.out, canonical_json(record.to_json()) + b"\n")
        print(f"deployment record {record.deployment_id} -> {args.out} (unsigned; run: edge-agent deployment sign)")
    if needs_threshold_approval(record):
        print(f"note: threshold {record.alert_threshold} < calibrated default {CALIBRATED_DEFAULT_THRESHOLD}: an approver must sign (edge-agent deployment approve)")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    record = _read_record(args.record, fill_defaults=False)
    signed = SignedDeployment.sign(record, load_authority_key(args.authority_key))
    _write_new(args.out, signed.to_bytes() + b"\n")
    print(f"signed deployment {record.deployment_id} -> {args.out}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    signed = SignedDeployment.load(args.deployment)
    record = signed.unverified_record()
    approved = signed.approve(load_approver_key(args.approver_key))
    out = args.out or args.deployment
    tmp = Path(str(out) + ".tmp")
    tmp.write_bytes(approved.to_bytes() + b"\n")
    os.replace(tmp, out)
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
