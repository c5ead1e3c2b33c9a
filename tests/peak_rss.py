"""The suite's memory limit (issue #20): no process of a test run may hold more than 3 GB.

At the end of a run this pytest plugin reads the peak resident set size of the pytest process and of
the largest process it waited for (``getrusage``: ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``), prints
them, and fails the run when one passes ``--peak-rss-limit-mb`` (3000 MB). A child's figure includes
the memory of the pytest process it was forked from (Linux counts it from before the ``exec``), so
it is never below the truth. tests/conftest.py loads it; tests/test_suite_limits.py checks it.
"""

from __future__ import annotations

import sys

import pytest

LIMIT_MB = 3000  # 3 GB: what `nox -s tests` may use, in any one process, on a 2-core machine
_measured: list[int] = []  # at the end of the run: [the pytest process, its largest waited-for child], bytes


def peak_rss() -> tuple[int, int]:
    """(this process, its largest waited-for descendant) peak RSS in bytes; (0, 0) where unknown."""
    if sys.platform == "win32":
        return 0, 0
    import resource

    unit = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own * unit, children * unit


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--peak-rss-limit-mb",
        type=int,
        default=LIMIT_MB,
        help=f"fail the run when a process of it passed this peak RSS in MB (default {LIMIT_MB})",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    _measured[:] = peak_rss()
    if max(_measured) > _limit(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _measured:
        return
    own, child = _measured
    over = max(own, child) > _limit(config)
    verdict = "OVER the limit: find the test with --durations and a per-test RSS" if over else "ok"
    terminalreporter.write_line(
        f"peak RSS: pytest {own / 1e6:.0f} MB, largest child {child / 1e6:.0f} MB; "
        f"limit {config.getoption('--peak-rss-limit-mb')} MB: {verdict}",
        red=over,
        bold=over,
    )


def _limit(config: pytest.Config) -> int:
    return int(config.getoption("--peak-rss-limit-mb")) * 1_000_000
