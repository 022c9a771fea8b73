"""The golden alerts of docs/formats/events.md, for tests that need a real signed event."""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.events.schema import AlertEvent, parse_payload

DOC = Path(__file__).resolve().parents[1] / "docs" / "formats" / "events.md"


def golden_alert(version: int = 2, raw: bool = False):
    text = DOC.read_text(encoding="utf-8")
    heading = "## Golden example\n" if version == 2 else "## Version 1 ("
    line = re.search(r"```json\n(.*?)\n```", text.split(heading, 1)[1], re.S).group(1).encode("utf-8")
    return line if raw else AlertEvent.from_dict(parse_payload(line))
