"""The skip policy itself, on small pytest runs in their own folder: with EXCAP_REQUIRE_ALL=1 a skip fails the run
(a missing requirement fails its test), only the allow-listed LeRobot skip passes; without it skips are skips."""

import pytest

from tests.support.requirements import LEROBOT_MISSING, REQUIRE_ALL_ENV

pytest_plugins = ["pytester"]

CONFTEST = """
from tests.support import skip_policy


def pytest_configure(config):
    skip_policy.register(config)
"""

SKIPPING = """
import pytest

from tests.support.requirements import require_shared_data


def test_passes():
    assert True


def test_skips_by_itself():
    pytest.skip("no reason worth a skip")


@pytest.mark.skipif(True, reason="a marker")
def test_skipif_marker():
    pass


def test_needs_missing_data(tmp_path):
    require_shared_data(tmp_path / "absent")
"""

LEROBOT = f"""
import pytest

pytest.skip({LEROBOT_MISSING!r} + " (No module named 'lerobot')", allow_module_level=True)


def test_reads_an_export():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skipping=SKIPPING)
    pytester.mkdir("tests")
    pytester.mkdir("tests/compat")
    (pytester.path / "tests" / "compat" / "test_lerobot_compat.py").write_text(LEROBOT)
    return pytester


def test_without_require_all_skips_are_skips(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ALL_ENV, raising=False)
    result = suite.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*unexpected skips*")


def test_under_require_all_an_unexpected_skip_fails_the_run(suite: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL_ENV, "1")
    result = suite.runpytest("-p", "no:cacheprovider")
    # the missing data fails its test; the other skips are listed and fail the run
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*real J1939 recordings not found*EXCAP_REQUIRE_ALL=1: this is required*"])
    result.stdout.fnmatch_lines(["*unexpected skips (EXCAP_REQUIRE_ALL=1)*",
                                 "SKIPPED test_skipping.py::test_skips_by_itself: no reason worth a skip",
                                 "SKIPPED test_skipping.py::test_skipif_marker: a marker",
                                 "2 unexpected skip(s): the run fails"])
    result.stdout.no_fnmatch_line("SKIPPED tests/compat/*")


def test_under_require_all_only_the_allowed_skip_passes(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL_ENV, "1")
    pytester.makeconftest(CONFTEST)
    pytester.mkdir("tests")
    pytester.mkdir("tests/compat")
    (pytester.path / "tests" / "compat" / "test_lerobot_compat.py").write_text(LEROBOT)
    pytester.makepyfile(test_passing="def test_passes():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    # the same skip in any other file is not allowed
    (pytester.path / "tests" / "compat" / "test_lerobot_compat.py").rename(pytester.path / "test_elsewhere.py")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_elsewhere.py: lerobot is not installed here*"])
