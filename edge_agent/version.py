"""The installed edge-agent version, for records that must say which tool produced them."""

from __future__ import annotations

from importlib import metadata


def tool_version() -> str:
    try:
        return f"edge_agent {metadata.version('edge_agent')}"
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "edge_agent (not installed)"
