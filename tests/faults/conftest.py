"""The fault suite (issue 11.3): marked ``faults`` (skip it in a quick run with ``-m 'not faults'``;
.ci/run runs it). Each case adds a row to the table printed at the end of the session."""

from __future__ import annotations

import pytest

from rig import Tally

TABLE: list[Tally] = []


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.broker)


def pytest_terminal_summary(terminalreporter):
    if not TABLE:
        return
    terminalreporter.section("fault suite: alerts raised, delivered to the store, duplicated and lost")
    terminalreporter.write_line(Tally.HEADER)
    for row in TABLE:
        terminalreporter.write_line(row.line())
        for note in row.notes:
            terminalreporter.write_line(f"    {note}")


@pytest.fixture
def table() -> list[Tally]:
    return TABLE
