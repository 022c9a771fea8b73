"""The authority to search (policing.md 1, 8, 15): a signed RFR or OIFR deployment record and the
sealed watchlist built for it, opened through the agent's own verifying loader.

Nothing is matched without both. The deployment's signature and mode are checked first, so a
search under an LFR deployment never opens the watchlist; the watchlist then goes through
``watchlist/installed.py load_audited`` exactly as on a camera (authority signature, device seal,
deployment window, threshold approval, model identity), bound to the very deployment file given.
Every refusal is audited: ``search_refused`` here, ``watchlist_refused`` by the loader. A
watchlist whose deployment has ended is destroyed where it was given, as the agent destroys a
pushed one (policing.md 4; ``deployment_ended``, ``watchlist_wiped``).

Mode rules (policing.md "Terms"; the running agent's are ``agent/runner.py check_mode``): LFR
authorises live capture only, never a search; RFR the search of stills or recordings collected
earlier; OIFR the comparison of one still an officer took, so its input is one image and only
that image's subject is searched (``vision/subject.py``), never bystanders.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from edge_agent.config_reader import read_file_bytes
from edge_agent.audit.log import AuditLog
from edge_agent.deployment.errors import DeploymentRefused
from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import EdgeAgentError, SecurityError
from edge_agent.search.inputs import IMAGE, SearchInput
from edge_agent.watchlist.errors import WatchlistExpired
from edge_agent.watchlist.installed import destroy_ended, has_ended, load_audited
from edge_agent.watchlist.loader import DeviceTrust, LoadedWatchlist

SEARCH_MODES = ("RFR", "OIFR")


class SearchRefused(DeploymentRefused):
    """The deployment does not authorise this search (wrong mode for a search, or for this input)."""


def check_search_mode(mode: str, deployment_id: str, search_input: SearchInput) -> None:
    """Raise SearchRefused unless a ``mode`` deployment authorises searching ``search_input``."""
    if mode == "LFR":
        raise SearchRefused(
            f"deployment {deployment_id} is LFR (live): it authorises matching live capture, not a search of {search_input.path}",
            "a search needs a deployment authorised for RFR (retrospective) or OIFR (operator-initiated) search, and a watchlist built for it",
        )
    if mode not in SEARCH_MODES:
        raise SearchRefused(f"deployment {deployment_id} has mode {mode!r}, which authorises no search", "ask the authority for an RFR or OIFR deployment")
    if mode == "OIFR" and search_input.kind != IMAGE:
        raise SearchRefused(
            f"deployment {deployment_id} is OIFR (operator-initiated): it authorises comparing one still an officer took, not a {search_input.kind} ({search_input.path})",
            "search one image under it, or use an RFR (retrospective) deployment to search folders and recordings",
        )


def open_for_search(
    deployment_path: Path,
    watchlist_path: Path,
    search_input: SearchInput,
    trust: DeviceTrust,
    now: datetime,
    audit: AuditLog,
) -> LoadedWatchlist:
    """The verified, decrypted watchlist for this search, or an audited refusal (re-raised). The
    package must be bound to the deployment record named for the search, whatever ``trust`` expects."""
    try:
        signed = SignedDeployment.load(deployment_path)
        try:
            record = signed.verify(trust.authority_pub)
        except SecurityError as exc:
            raise DeploymentRefused(exc.message, exc.hint) from None
        check_search_mode(record.mode, record.deployment_id, search_input)
        package = read_file_bytes(watchlist_path, "watchlist package", "give the sealed watchlist built for this deployment", "name the package file itself")
    except EdgeAgentError as exc:
        audit_refusal(audit, exc, search_input, deployment_path, now)
        raise
    try:
        return load_audited(package, replace(trust, expected_deployment=signed), now, audit, source=str(watchlist_path))
    except EdgeAgentError as exc:
        if not has_ended(exc, package, now):
            raise
        try:
            destroy_ended(Path(watchlist_path), package, now, audit)  # as the agent does with a pushed package
        except OSError as failed:  # read-only medium, say
            raise WatchlistExpired(
                f"{exc.message}; the package {watchlist_path} could not be destroyed ({failed.strerror})",
                "destroy it by hand: a watchlist must not outlive its deployment (policing.md 4)",
            ) from None
        raise WatchlistExpired(f"{exc.message}; the package {watchlist_path} has been destroyed", exc.hint) from None


def audit_refusal(audit: AuditLog, exc: EdgeAgentError, search_input: SearchInput, deployment_path: Path, now: datetime) -> None:
    """``search_refused``: a search that did not run (or stopped on an error), with why and what was to be searched."""
    audit.append(
        "search_refused",
        {"reason": type(exc).__name__, "message": exc.message[:500], "deployment_file": str(deployment_path),
         "input": str(search_input.path), "input_kind": search_input.kind, "input_sha256": search_input.sha256},
        now=now,
    )
