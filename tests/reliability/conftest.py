"""The reliability suite's tally: what was tried on purpose, and how each case ended.

Every test of this folder records its cases through the ``tally`` fixture
(see :mod:`.support`).  At the end of the run the counts are printed in the
terminal summary; with ``REGDATA_RELIABILITY_FIGURES`` set (to a path, or to
``1`` for ``tests/reliability/figures.json``) they are also written as JSON,
for the README to quote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .support import Tally

FIGURES_ENV = "REGDATA_RELIABILITY_FIGURES"
# Every case, one JSON line each, for a person reviewing what was tried.
CASES_ENV = "REGDATA_RELIABILITY_CASES"
DEFAULT_FIGURES = Path(__file__).with_name("figures.json")

_TALLY = pytest.StashKey[Tally]()


def _tally_of(config: pytest.Config) -> Tally:
    if _TALLY not in config.stash:
        config.stash[_TALLY] = Tally()
    return config.stash[_TALLY]


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    """The session's tally of bad inputs and fault scenarios."""
    return _tally_of(request.config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if _TALLY not in config.stash:
        return
    tally = config.stash[_TALLY]
    if not tally.cases:
        return
    terminalreporter.write_sep("=", "reliability: what was tried on purpose")
    for line in tally.report_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line("")
    terminalreporter.write_line(tally.headline())
    target = os.environ.get(FIGURES_ENV)
    if target:
        path = DEFAULT_FIGURES if target.strip() in ("1", "true", "yes") else Path(target)
        path.write_text(json.dumps(tally.figures(), indent=2, sort_keys=True) + "\n")
        terminalreporter.write_line(f"figures written to {path}")
    cases = os.environ.get(CASES_ENV)
    if cases:
        Path(cases).write_text("".join(json.dumps(vars(case)) + "\n" for case in tally.cases))
