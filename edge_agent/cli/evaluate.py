"""Evaluation commands: ``evaluate`` (accuracy and bias report, optional release gate),
``calibrate`` (threshold for a false-alert budget) and ``report`` (what a deployment did).

Exit codes: 0 ok; 2 bad input (printed by main); 3 the gate failed or no threshold can be
recommended, with the reason printed, so a release pipeline can stop on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.cli.progress import Progress
from edge_agent.durable import atomic_write
from edge_agent.errors import EdgeAgentError
from edge_agent.safe_load import json_loads
from edge_agent.vision.identity import DEFAULT_DETECTOR, DETECTOR_CHOICES
from edge_agent.vision.model_choice import PRECISION_CHOICES

EXIT_GATE_FAILED = 3
#: Spawning workers costs a few seconds of model loading each: only worth it for larger sets.
PARALLEL_FROM_IMAGES = 500
DEVSET_ENV = "EDGE_AGENT_DEVSET"


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("evaluate", help="accuracy and bias evaluation over a labelled <identity>/<image> set",
                               description="1:1 FMR/FNMR and 1:N FPIR/FNIR with 95% intervals, per group; "
                                           "writes report.html and report.json; --gate makes it a release check (exit 3 on failure).")
    ev.add_argument("dataset", type=Path, help="folder laid out as <identity>/<image>")
    ev.add_argument("--groups", type=Path, help="CSV with header identity,group")
    ev.add_argument("--out", type=Path, default=Path("evaluation-report"), help="output folder (default ./evaluation-report)")
    ev.add_argument("--json", action="store_true", help="print the summary (and gate result) as JSON on stdout")
    ev.add_argument("--threshold", type=float, help="operating threshold: group differentials and the gate are taken here")
    ev.add_argument("--watchlist-sizes", default="1000,10000", help="comma-separated watchlist sizes (default 1000,10000)")
    ev.add_argument("--enrol-per-subject", type=int, default=1, help="reference images enrolled per watchlist subject (default 1)")
    ev.add_argument("--seed", type=int, default=0, help="seed for watchlist selection and pair sampling (default 0)")
    ev.add_argument("--gate", action="store_true", help="release gate: exit 3 if FPIR at --threshold is over --budget or a group's FPIR is significantly higher")
    ev.add_argument("--budget", help="false alerts per face, e.g. 1/6000 (needed with --gate)")
    ev.add_argument("--gate-watchlist-size", type=int, help="watchlist size the gate checks (default: the largest evaluated)")
    ev.add_argument("--alpha", type=float, default=0.05, help="family-wise significance level of the group test (default 0.05)")
    _add_embedding_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    cal = subparsers.add_parser("calibrate", help="lowest threshold whose FPIR keeps false alerts within a budget",
                                description="Uses the upper 95% Wilson bound of FPIR (conservative). Exit 3 when no threshold can be shown to meet the budget.")
    cal.add_argument("--evaluation", type=Path, required=True, help="report.json from 'edge-agent evaluate', or a dataset folder to evaluate now")
    cal.add_argument("--watchlist-size", type=int, required=True, help="subjects on the deployment's watchlist")
    cal.add_argument("--footfall", type=int, required=True, help="faces expected to pass the camera during the deployment")
    cal.add_argument("--budget", required=True, help="authorised false alerts per face, e.g. 1/6000")
    cal.add_argument("--groups", type=Path, help="groups CSV (only when --evaluation is a dataset)")
    cal.add_argument("--out", type=Path, help="write the calibration record here (default: stdout only)")
    cal.add_argument("--report-out", type=Path, default=Path("evaluation-report"), help="where to write the evaluation when --evaluation is a dataset")
    _add_embedding_options(cal)
    cal.set_defaults(func=cmd_calibrate)

    rep = subparsers.add_parser("report", help="deployment report: faces, alerts, adjudications, false-alert rates, retention")
    rep.add_argument("--deployment", required=True, help="deployment id")
    rep.add_argument("--audit", type=Path, required=True, action="append",
                     help="audit log (JSON lines); repeat for each device's log and the control room's")
    rep.add_argument("--audit-pub", type=Path, action="append", default=[],
                     help="Ed25519 public key (or key directory) of each --audit log's writer, in the same order: the chain is verified first")
    rep.add_argument("--checkpoint-every", type=int, default=100, help="checkpoint interval the logs were written with (default 100)")
    rep.add_argument("--alerts-db", type=Path, required=True, help="control-room database (SQLite)")
    rep.add_argument("--out", type=Path, default=Path("deployment-report"), help="output folder")
    rep.add_argument("--json", action="store_true", help="print the report JSON on stdout")
    rep.set_defaults(func=cmd_report)


def _add_embedding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR, help=f"BlazeFace range(s); use the devices' detector.model (default {DEFAULT_DETECTOR})")
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the bundled models)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="which variant of each model runs, as the devices' hardware.precision (default auto: this CPU decides); "
                             "the report records it, and pinning it makes a calibration reproducible on another machine")
    parser.add_argument("--threads", type=int, default=2, help="TFLite threads when --workers is 1 (default 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"embedding worker processes, one core each (default: 1 below {PARALLEL_FROM_IMAGES} images, else up to 2)")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache file (default ~/.cache/edge-agent/evaluation-embeddings.sqlite)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise EdgeAgentError(f"--watchlist-sizes {text!r} is not a list of positive integers", "e.g. --watchlist-sizes 1000,10000")
    return sizes


def _now() -> datetime:
    return datetime.now(UTC)


def run_evaluation(dataset_dir: Path, groups_path: Path | None, args: argparse.Namespace, watchlist_sizes: tuple[int, ...],
                   threshold: float | None):
    """Scan, embed (with cache and progress bar) and analyse; returns the Evaluation."""
    from edge_agent.evaluation.analysis import EvaluationSettings, analyse
    from edge_agent.evaluation.dataset import load_groups, scan_dataset
    from edge_agent.evaluation.embedding_cache import EmbeddingCache, default_cache_path
    from edge_agent.evaluation.parallel import CorePool, worker_enrol, worker_probe
    from edge_agent.evaluation.runner import (
        core_enrol_fn,
        core_model_description,
        core_probe_fn,
        embed_dataset,
    )
    from edge_agent.vision.core import RecognitionCore

    dataset = scan_dataset(dataset_dir)
    groups = load_groups(groups_path, dataset.identities) if groups_path else None
    core = RecognitionCore.load(args.models, detector=args.detector, threads=args.threads, precision=args.precision)
    model = core_model_description(core)
    cache = None if args.no_cache else EmbeddingCache(args.cache or default_cache_path())
    enrol_per_subject = getattr(args, "enrol_per_subject", 1)
    workers = args.workers if args.workers is not None else (min(2, os.cpu_count() or 1) if len(dataset.images) >= PARALLEL_FROM_IMAGES else 1)
    if workers < 1:
        raise EdgeAgentError(f"--workers {workers} must be at least 1", "e.g. --workers 2")
    try:
        with Progress(len(dataset.images), "embedding") as bar:
            if workers == 1:
                embedded = embed_dataset(dataset, core_probe_fn(core), core_enrol_fn(core), model, enrol_per_subject, cache, bar.advance)
            else:
                with CorePool(args.models, args.detector, workers, args.precision) as pool:
                    embedded = embed_dataset(dataset, worker_probe, worker_enrol, model, enrol_per_subject, cache, bar.advance, pool.map)
    finally:
        if cache is not None:
            cache.close()
    info = dataset_info(dataset, groups_path)
    settings = EvaluationSettings(watchlist_sizes=watchlist_sizes, operating_threshold=threshold,
                                  enrol_per_subject=getattr(args, "enrol_per_subject", 1), seed=getattr(args, "seed", 0))
    return analyse(embedded, groups, settings, info, _now())


def dataset_info(dataset: Any, groups_path: Path | None) -> dict[str, Any]:
    from collections import Counter

    counts = Counter(im.identity for im in dataset.images)
    info: dict[str, Any] = {
        "root": str(dataset.root),
        "images": len(dataset.images),
        "identities": len(counts),
        "identities_with_2plus_images": sum(1 for c in counts.values() if c >= 2),
        "content_sha256": dataset.content_sha256(),
    }
    if groups_path:
        info["groups_file"] = str(groups_path)
        info["groups_file_sha256"] = hashlib.sha256(Path(groups_path).read_bytes()).hexdigest()
    return info


def write_outputs(evaluation: Any, out_dir: Path, gate: dict[str, Any] | None) -> tuple[Path, Path, str]:
    """Write report.json (and its sha256) and report.html; the JSON is written first and atomically."""
    from edge_agent.evaluation.report_html import render

    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(evaluation.report)
    if gate is not None:
        report["gate"] = gate
    data = (json.dumps(report, indent=1, allow_nan=False) + "\n").encode()
    json_path = out_dir / "report.json"
    atomic_write(json_path, data, 0o644)
    digest = hashlib.sha256(data).hexdigest()
    html_path = out_dir / "report.html"
    atomic_write(html_path, render(evaluation, gate).encode(), 0o644)
    return json_path, html_path, digest


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edge_agent.evaluation.analysis import identification_from_report
    from edge_agent.evaluation.calibrate import parse_budget
    from edge_agent.evaluation.gate import release_gate

    sizes = _sizes(args.watchlist_sizes)
    budget = None
    if args.gate:
        if args.threshold is None or args.budget is None:
            raise EdgeAgentError("--gate needs --threshold and --budget", "e.g. --gate --threshold 0.55 --budget 1/6000")
        budget = parse_budget(args.budget)
    evaluation = run_evaluation(args.dataset, args.groups, args, sizes, args.threshold)

    gate_dict: dict[str, Any] | None = None
    if budget is not None:  # --gate
        available = identification_from_report(evaluation.report)
        if not available:
            raise EdgeAgentError("the release gate needs a 1:N evaluation, and this dataset allows none",
                                 "use a dataset with identities that have at least two usable images")
        if args.gate_watchlist_size is not None:
            chosen = [s for s in available if s.watchlist_size == args.gate_watchlist_size]
            if not chosen:
                raise EdgeAgentError(f"watchlist size {args.gate_watchlist_size} was not evaluated",
                                     f"evaluated: {', '.join(str(s.watchlist_size) for s in available)}; add it to --watchlist-sizes")
            scores = chosen[0]
        else:
            scores = max(available, key=lambda s: s.watchlist_size)
        gate_dict = release_gate(scores, evaluation.group_names, args.threshold, budget.rate, args.alpha).as_dict()
        gate_dict["budget_text"] = budget.text

    json_path, html_path, digest = write_outputs(evaluation, args.out, gate_dict)
    summary = summarise(evaluation.report, json_path, html_path, digest)
    if gate_dict is not None:
        summary["gate"] = gate_dict
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary)
    if gate_dict is not None and not gate_dict["passed"]:
        print("release gate FAILED:", file=sys.stderr)
        for reason in gate_dict["reasons"]:
            print(f"  - {reason}", file=sys.stderr)
        return EXIT_GATE_FAILED
    return 0


def summarise(report: dict[str, Any], json_path: Path, html_path: Path, digest: str) -> dict[str, Any]:
    enrol = report["enrolment"]
    ident = report["identification"]
    out: dict[str, Any] = {
        "report_json": str(json_path),
        "report_sha256": digest,
        "report_html": str(html_path),
        "images": enrol["attempted"],
        "enrolment_failures": enrol["failure_rate"],
        "tar_at_far": report["verification"]["tar_at_far"],
        "watchlist_sizes": [s["watchlist_size"] for s in ident["sizes"]],
        "fnir_at_fpir": {str(s["watchlist_size"]): s["fnir_at_fpir"] for s in ident["sizes"]},
        "notes": report["notes"],
    }
    if "differentials" in report:
        out["max_group_ratio"] = {k: v["max_ratio"] for k, v in report["differentials"].items() if isinstance(v, dict) and "max_ratio" in v}
    return out


def print_summary(summary: dict[str, Any]) -> None:
    rate = summary["enrolment_failures"]
    print(f"images: {summary['images']:,}; no usable face: {rate['events']:,} ({(rate['rate'] or 0):.1%})")
    for op in summary["tar_at_far"]:
        if op["threshold"] is None:
            print(f"1:1 TAR @ FAR {op['target']:g}: not resolvable ({op['note']})")
        else:
            print(f"1:1 TAR @ FAR {op['target']:g}: {op['true_positive']['rate']:.4f} at threshold {op['threshold']:.4f}")
    for size, ops in summary["fnir_at_fpir"].items():
        for op in ops:
            if op["threshold"] is None:
                print(f"1:N (watchlist {int(size):,}) FNIR @ FPIR {op['target']:g}: not resolvable ({op['note']})")
            else:
                print(f"1:N (watchlist {int(size):,}) FNIR @ FPIR {op['target']:g}: {op['fnir']['rate']:.4f} at threshold {op['threshold']:.4f}")
    for kind, worst in summary.get("max_group_ratio", {}).items():
        if worst["group"] is not None:
            print(f"largest group-to-overall {kind.upper()} ratio: {worst['ratio']:.2f} ({worst['group']})")
    for note in summary["notes"]:
        print(f"note: {note}")
    if "gate" in summary:
        print(f"release gate: {'PASSED' if summary['gate']['passed'] else 'FAILED'}")
    print(f"report: {summary['report_html']} and {summary['report_json']} (sha256 {summary['report_sha256']})")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from edge_agent.evaluation.analysis import REPORT_FORMAT, identification_from_report
    from edge_agent.evaluation.calibrate import calibrate, choose_scores, encode_calibration, parse_budget

    budget = parse_budget(args.budget)
    if args.watchlist_size < 1:
        raise EdgeAgentError(f"--watchlist-size {args.watchlist_size} must be at least 1", "give the number of subjects on the watchlist")
    source = args.evaluation
    if source.is_dir():
        args.enrol_per_subject, args.seed = 1, 0
        evaluation = run_evaluation(source, args.groups, args, (args.watchlist_size,), None)
        json_path, _, digest = write_outputs(evaluation, args.report_out, None)
        print(f"evaluation written to {json_path} (sha256 {digest})", file=sys.stderr)
        report = evaluation.report
    else:
        try:
            data = source.read_bytes()
            report = json_loads(data)
        except OSError as exc:
            raise EdgeAgentError(f"cannot read evaluation report {source}: {exc.strerror}", "pass report.json from 'edge-agent evaluate'") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EdgeAgentError(f"{source} is not JSON: {exc}", "pass report.json from 'edge-agent evaluate'") from exc
        if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT or report.get("version") != 1:
            raise EdgeAgentError(f"{source} is not an edge-agent evaluation report (format {REPORT_FORMAT} v1)",
                                 "pass report.json from 'edge-agent evaluate'")
        digest = hashlib.sha256(data).hexdigest()
    scores = choose_scores(identification_from_report(report), args.watchlist_size)
    dataset = report.get("dataset") if isinstance(report.get("dataset"), dict) else {}
    record = calibrate(scores, budget, args.watchlist_size, args.footfall, _now(), digest, report.get("model"),
                       dataset.get("content_sha256"))
    data = encode_calibration(record)  # the bytes a deployment cites by SHA-256: the same on stdout as in --out
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, data, 0o644)
    sys.stdout.write(data.decode("utf-8"))
    if record["recommended_threshold"] is None:
        print(f"no threshold recommended: {record['reason']}", file=sys.stderr)
        return EXIT_GATE_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_agent.crypto.keyfiles import load_public_key
    from edge_agent.control_room.report import (
        build_report,
        read_audit,
        render_html,
    )
    from edge_agent.identity.keys import DEVICE_SIGN_PUB

    if args.audit_pub and len(args.audit_pub) != len(args.audit):
        raise EdgeAgentError(f"{len(args.audit_pub)} --audit-pub key(s) for {len(args.audit)} --audit log(s)",
                             "give one key per log, in the same order, or none")
    keys: list[Ed25519PublicKey | None] = [load_public_key(k / DEVICE_SIGN_PUB if k.is_dir() else k, Ed25519PublicKey) for k in args.audit_pub]
    keys = keys or [None] * len(args.audit)
    sources = [read_audit(path, key, args.checkpoint_every) for path, key in zip(args.audit, keys, strict=True)]
    report = build_report(args.deployment, sources, args.alerts_db, _now())
    args.out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(report, indent=1, allow_nan=False) + "\n"
    atomic_write(args.out / "deployment-report.json", data.encode(), 0o644)
    atomic_write(args.out / "deployment-report.html", render_html(report).encode(), 0o644)
    if args.json:
        sys.stdout.write(data)
    else:
        print(f"deployment report: {args.out / 'deployment-report.html'} and {args.out / 'deployment-report.json'}")
    return 0
