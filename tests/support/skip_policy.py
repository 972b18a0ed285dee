"""A pytest plugin: under EXCAP_REQUIRE_ALL=1 a run with an unexpected skip fails.

`register(config)` (called from the root conftest's `pytest_configure`) adds one `SkipPolicy` per run. It
notes every skipped test and every skipped module (module-level skips, `importorskip`, `skipif`, expected
failures alike); at the end of the session, when EXCAP_REQUIRE_ALL=1, any skip not in
`requirements.ALLOWED_SKIPS` sets the exit status to "tests failed" and is listed in the terminal summary.
"""

from dataclasses import dataclass

import pytest

from tests.support.requirements import REQUIRE_ALL_ENV, require_all, skip_allowed

PLUGIN_NAME = "excap-skip-policy"


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"expected failure: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    def __init__(self) -> None:
        self.skips: list[Skip] = []

    @property
    def unexpected(self) -> list[Skip]:
        return [s for s in self.skips if not skip_allowed(s.nodeid, s.reason)]

    def _note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped:
            self.skips.append(Skip(report.nodeid, skip_reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if require_all() and self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not require_all() or not self.unexpected:
            return
        terminalreporter.section(f"unexpected skips ({REQUIRE_ALL_ENV}=1)", red=True)
        for skip in self.unexpected:
            terminalreporter.write_line(f"SKIPPED {skip.nodeid}: {skip.reason}", red=True)
        terminalreporter.write_line(f"{len(self.unexpected)} unexpected skip(s): the run fails", red=True)


def register(config: pytest.Config) -> SkipPolicy:
    policy = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if policy is None:
        policy = SkipPolicy()
        config.pluginmanager.register(policy, PLUGIN_NAME)
    return policy
