"""The guards that keep CI from passing with a gap: unexpected skips fail the run, a hanging test fails, and CI's
hypothesis profile is reproducible.

Each check runs pytest on made-up test files (pytester), with the guard plugin of tests/skip_guard.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

SKIPS_WITH_A_REASON = """
import pytest

def test_runs():
    pass

def test_needs_something_missing():
    pytest.skip("the thing is not installed")
"""

TESTS = Path(__file__).parents[1]

ALLOWED_SKIP = """
import pytest

@pytest.mark.skipif(True, reason="set VITGPT2_FULL_DIR to a save_random_model(DIR, 'full') directory (~1 GB) to run")
def test_full_size_model_gives_identical_tokens():
    pass
"""


@pytest.fixture
def in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")


@pytest.fixture
def not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)


def test_in_ci_a_skip_outside_the_allowlist_fails_the_run_and_is_named(pytester: pytest.Pytester, in_ci: None) -> None:
    pytester.makepyfile(test_partly=SKIPS_WITH_A_REASON)
    result = pytester.runpytest("-p", "skip_guard")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["UNEXPECTED SKIP: test_partly.py::test_needs_something_missing: the thing is not*"])


def test_in_ci_a_conftest_that_skips_its_whole_directory_fails_the_run(pytester: pytest.Pytester, in_ci: None) -> None:
    """The shape of tests/infra/conftest.py without the CDK extra: pytest itself would exit 0."""
    infra = pytester.mkdir("needs_cdk")
    (infra / "conftest.py").write_text('import pytest\npytest.importorskip("no_such_cdk_module")\n')
    (infra / "test_stack.py").write_text("def test_synth():\n    pass\n")
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = pytester.runpytest("-p", "skip_guard")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["UNEXPECTED SKIP: needs_cdk*could not import 'no_such_cdk_module'*"])


def test_an_allowed_skip_passes_and_is_still_listed(
    pytester: pytest.Pytester, in_ci: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a subprocess: this session has imported the real tests/unit/test_decoding.py under the same name."""
    pytester.mkdir("tests")
    pytester.mkdir("tests/unit")
    (pytester.path / "tests" / "unit" / "test_decoding.py").write_text(ALLOWED_SKIP)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "skip_guard")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["allowed skip: tests/unit/test_decoding.py::test_full_size_model_gives_identical*"])


def test_an_expected_failure_is_not_a_skip(pytester: pytest.Pytester, in_ci: None) -> None:
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.xfail(strict=True)\ndef test_x():\n    assert False\n")
    result = pytester.runpytest("-p", "skip_guard")
    result.assert_outcomes(xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_outside_ci_skips_pass_unless_asked(pytester: pytest.Pytester, not_in_ci: None) -> None:
    pytester.makepyfile(test_partly=SKIPS_WITH_A_REASON)
    assert pytester.runpytest("-p", "skip_guard").ret == pytest.ExitCode.OK
    asked = pytester.runpytest("-p", "skip_guard", "--fail-on-unexpected-skips")
    assert asked.ret == pytest.ExitCode.TESTS_FAILED


def test_a_failing_run_keeps_its_own_exit_status(pytester: pytest.Pytester, in_ci: None) -> None:
    pytester.makepyfile(test_x=SKIPS_WITH_A_REASON + "\ndef test_broken():\n    assert False\n")
    assert pytester.runpytest("-p", "skip_guard").ret == pytest.ExitCode.TESTS_FAILED


def test_a_hanging_test_fails_with_the_configured_timeout(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    """pytest-timeout is installed and configured for this suite; a test that hangs fails instead of stalling CI."""
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) > 0
    pytester.makepyfile(test_hangs="import threading\ndef test_hangs():\n    threading.Event().wait()\n")
    result = pytester.runpytest_subprocess("-o", "timeout=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Timeout (>2.0s) from pytest-timeout*"])


def test_the_ci_hypothesis_profile_is_reproducible() -> None:
    profile = settings.get_profile("ci")
    assert profile.derandomize and profile.print_blob
