"""Short fuzz run of every parser that reads outside input (issue 11.4): a few thousand executions
each under atheris, with seeds made and signed by the project's own code. Any exception that is
not the parser's documented refusal is a failure, with the crashing input saved and named.
The long run (1,000,000 executions per parser) is benchmarks/fuzz.py; figures in the README."""

from __future__ import annotations

import importlib.util
import platform

import pytest

from fuzzing import fuzz
from targets import TARGETS

pytestmark = pytest.mark.fuzz

RUNS = 2000
MAX_TIME_S = 3  # per target, so the whole short run stays near a minute on a loaded 2-core machine


@pytest.fixture(scope="module")
def atheris_installed() -> None:
    if importlib.util.find_spec("atheris") is None:
        if platform.machine() in ("x86_64", "AMD64"):
            pytest.fail("atheris is not installed: pip install -e '.[dev]' (it is in the dev extra on x86-64)")
        pytest.skip(f"atheris has no wheel for {platform.machine()}; the fuzz run is x86-64 only")


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_survives_fuzzing(name, tmp_path, atheris_installed):
    result = fuzz(name, RUNS, tmp_path, max_time_s=MAX_TIME_S, timeout_s=120)
    assert result.crashes == 0, f"{name} crashed; input saved at {result.crash_input}\n{result.log_tail}"
    assert result.executions >= min(RUNS, 100), f"{name} ran only {result.executions} inputs\n{result.log_tail}"


def test_a_crash_is_caught_and_its_input_saved(tmp_path, atheris_installed):
    """Positive control: a harness that lets the parser's own refusal escape is reported as crashed."""
    result = fuzz("control_unguarded", RUNS, tmp_path, max_time_s=MAX_TIME_S, timeout_s=120)
    assert result.crashes == 1 and result.crash_input is not None and result.crash_input.is_file()
    assert "EventFormatError" in result.log_tail
