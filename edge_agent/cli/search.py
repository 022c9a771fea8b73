"""``edge-agent search``: retrospective (RFR) or operator-initiated (OIFR) search under a deployment.

It needs what a camera needs to match: the signed deployment record, the sealed watchlist built
for it, this device's keys (to open the seal), the pinned authority key, and an audit log, where
every search and every refusal is recorded (edge_agent/search/authority.py). It prints candidates
at or above the deployment's threshold for an investigator to review, never a stated identity.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_agent.cli.progress import Progress
from edge_agent.cli.recognition import add_model_options, load_core
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.events.schema import round_score
from edge_agent.search.inputs import VIDEO, open_input, read_frames
from edge_agent.search.retrospective import DEFAULT_TOP, DEPLOYMENT_ENDED, SearchOutcome, StillHit, TrackHit

BASIS_TEXT = {"single_frame": "best single frame", "fused_track": "fused track template"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="RFR/OIFR search of an image, a folder or a video under a signed deployment: candidates at or above its threshold, audited",
    )
    p.add_argument("input", type=Path, help="an image, a folder of images, or a video file (OIFR: one image)")
    p.add_argument("--deployment", type=Path, required=True, help="the signed RFR or OIFR deployment file")
    p.add_argument("--watchlist", type=Path, required=True, help="the sealed watchlist package built for that deployment and this device")
    p.add_argument("--device-keys", type=Path, required=True, help="this device's key directory (its X25519 key opens the watchlist's seal)")
    p.add_argument("--authority-pub", type=Path, required=True, help="the pinned authority public key")
    p.add_argument("--approver-pub", type=Path, action="append", default=[], help="pinned approver public key (repeatable)")
    p.add_argument("--audit-log", type=Path, required=True, help="tamper-evident audit log every search is written to (required)")
    p.add_argument("--audit-key", type=Path, help="Ed25519 key that signs the log's checkpoints (default: the device's signing key)")
    p.add_argument("--actor", default=None, help="who is searching (default operator:<login>)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"at most this many candidates per face or person, all at or above the threshold (default {DEFAULT_TOP})")
    p.add_argument("--sample-fps", type=float, default=5.0, help="frames per second searched in a video (default 5)")
    add_model_options(p)
    p.set_defaults(func=cmd_search)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def cmd_search(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_agent.audit.log import AuditLog
    from edge_agent.crypto.keyfiles import load_private_key
    from edge_agent.deployment.policy import cited_calibration, describe_threshold
    from edge_agent.identity.keys import load_approver_public, load_authority_public, load_device_keys
    from edge_agent.search.authority import audit_refusal, open_for_search
    from edge_agent.watchlist.loader import DeviceTrust
    from edge_agent.search.retrospective import run_search

    if args.top < 1:
        raise ConfigError(f"--top {args.top} must be at least 1", "e.g. --top 5")
    if args.sample_fps <= 0:
        raise ConfigError(f"--sample-fps {args.sample_fps} must be above 0", "e.g. --sample-fps 5")
    search_input = open_input(args.input)
    keys = load_device_keys(args.device_keys)
    authority = load_authority_public(args.authority_pub)
    approvers = [load_approver_public(p) for p in args.approver_pub]
    audit_key = load_private_key(args.audit_key, Ed25519PrivateKey) if args.audit_key else keys.signing_key
    core = load_core(args)
    actor = args.actor or f"operator:{getpass.getuser()}"
    with AuditLog.open(args.audit_log, audit_key, actor) as audit:
        trust = DeviceTrust(keys, authority, core.identity, approvers)
        watchlist = open_for_search(args.deployment, args.watchlist, search_input, trust, _utc_now(), audit)
        if cited_calibration(watchlist.deployment) is None:
            print(describe_threshold(watchlist.deployment), file=sys.stderr)
        try:
            frames, total = read_frames(search_input, args.sample_fps)
            with Progress(total, "searching") as bar:
                outcome = run_search(core, watchlist, search_input, frames, _utc_now, args.top,
                                     max_track_gap_s=max(1.0, 2.5 / args.sample_fps), on_frame=bar.advance)
        except EdgeAgentError as exc:  # an unreadable frame, say: the refusal is audited too
            audit_refusal(audit, exc, search_input, args.deployment, _utc_now())
            raise
        record = audit.append("search_run", outcome.audit_details(), now=_utc_now())
    if args.json:
        print(json.dumps(_json(outcome, args.audit_log, record.seq), indent=2))
    else:
        print("\n".join(_text(outcome, args.audit_log, record.seq)))
    return 0


def _hit_json(hit: StillHit | TrackHit) -> dict[str, Any]:
    candidates = [{"rank": i, "subject_ref": c.subject_ref, "score": round_score(c.score), "basis": c.basis, "at_s": c.at_s}
                  for i, c in enumerate(hit.candidates, 1)]
    if isinstance(hit, TrackHit):
        return {"track": hit.track, "first_seen_s": round(hit.first_seen_s, 3), "last_seen_s": round(hit.last_seen_s, 3),
                "faces": hit.faces, "candidates": candidates}
    return {"file": hit.file, "face": hit.face, "box": list(hit.box), "candidates": [{k: v for k, v in c.items() if k != "at_s"} for c in candidates]}


def _json(outcome: SearchOutcome, audit_log: Path, seq: int) -> dict[str, Any]:
    details = outcome.audit_details()
    details.pop("candidates")
    return {**details, "results": [_hit_json(h) for h in outcome.hits], "audit": {"log": str(audit_log), "seq": seq}}


def timestamp(seconds: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def _text(outcome: SearchOutcome, audit_log: Path, seq: int) -> list[str]:
    threshold = f"{outcome.threshold:g}"
    lines = [
        f"Search under deployment {outcome.deployment_id} ({outcome.mode}), threshold {threshold}: candidates at or above it,"
        " for an investigator to review. These are possible matches, not identifications."
    ]
    counted = f"{outcome.faces_found} face(s) found, {outcome.faces_searched} searched, {outcome.faces_not_searched} not searched"
    if outcome.input.kind == VIDEO:
        lines.append(f"{outcome.input.path}: {outcome.frames} frames searched, {counted}, {outcome.tracks} person track(s)")
    else:
        lines.append(f"{outcome.input.path}: {outcome.frames} image(s) searched, {counted}")
    if outcome.not_searched_because is not None:
        lines.append(f"The still's subject cannot be told ({outcome.not_searched_because}): nothing was searched;"
                     " take a still in which the one person is clearly the largest face")
    for hit in outcome.hits:
        if isinstance(hit, TrackHit):
            lines.append(f"person (track {hit.track}) seen {timestamp(hit.first_seen_s)} to {timestamp(hit.last_seen_s)} in {hit.faces} frame(s):")
        else:
            lines.append(f"{hit.file} face {hit.face} box={list(hit.box)}:")
        for i, c in enumerate(hit.candidates, 1):
            where = f", at {timestamp(c.at_s)}" if c.at_s is not None else ""
            lines.append(f"  {i}. {c.subject_ref:<24} {c.score:.3f}  ({BASIS_TEXT.get(c.basis, c.basis)}{where})")
    if not outcome.hits:
        lines.append(f"No candidate at or above the threshold {threshold}.")
    if outcome.stopped_because == DEPLOYMENT_ENDED:
        lines.append(f"Matching stopped: deployment {outcome.deployment_id} ended during the search; the rest of the input was not searched.")
    lines.append(f"Audited: {audit_log} record {seq} (search_run).")
    return lines
