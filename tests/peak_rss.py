"""The suite's memory limit (issue #20): no process of a test run may hold more than 3 GB.

At the end of a run this pytest plugin reads the peak resident set size of the pytest process and of
the largest process it waited for (``getrusage``: ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``; under
pytest-xdist each worker sends its own), prints them, and fails the run when one passes
``--peak-rss-limit-mb`` (3000 MB). A child's figure includes the memory of the pytest process it was
forked from (Linux counts it from before the ``exec``), so it is never below the truth.
tests/conftest.py loads it; tests/test_suite_limits.py checks it fails a run.
"""

from __future__ import annotations

import sys

import pytest

LIMIT_MB = 3000  # 3 GB: what `nox -s tests` may use, in any one process, on a 2-core machine
_KEY = "envspec_peak_rss"
_peaks: dict[str, tuple[int, int]] = {}  # who -> (the process itself, its largest waited-for child), bytes


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


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist: a worker ended; keep what it measured."""
    output = getattr(node, "workeroutput", {})
    if _KEY in output:
        own, child = output[_KEY]
        _peaks[str(getattr(getattr(node, "gateway", None), "id", "worker"))] = (int(own), int(child))


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller judges
        workeroutput[_KEY] = peak_rss()
        return
    _peaks["pytest"] = peak_rss()
    limit = session.config.getoption("--peak-rss-limit-mb") * 1_000_000
    if any(max(pair) > limit for pair in _peaks.values()) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _peaks or "pytest" not in _peaks:
        return
    limit = config.getoption("--peak-rss-limit-mb")
    parts = [f"{who} {own / 1e6:.0f} MB (largest child {child / 1e6:.0f} MB)" for who, (own, child) in _peaks.items()]
    over = any(max(pair) > limit * 1_000_000 for pair in _peaks.values())
    verdict = f"OVER the {limit} MB limit: find the test with --durations and a per-test RSS" if over else "ok"
    terminalreporter.write_line(f"peak RSS: {', '.join(parts)}; limit {limit} MB: {verdict}", red=over, bold=over)
