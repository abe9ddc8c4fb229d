"""``--agents-run-require-infra``: ``get_infra()`` during a test that did not request ``infra``
is an error (registered by guardrails.configure only where the setting is on)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import pytest

from agents_run.application.infra import set_fallback_guard
from agents_run.errors import AgentsRunError
from pytest_agents_run.session import REQUIRE_INFRA_INI

_violations_key = pytest.StashKey[list[str]]()


class InfraNotRequested(AgentsRunError, RuntimeError):
    """``get_infra()`` was called during a test that did not request the ``infra`` fixture,
    under ``--agents-run-require-infra``."""


@dataclass(eq=False)
class InfraGuard:
    """``get_infra()`` falling back to a default during a test is an error that says how to fix
    it; recorded too, so that code which swallows the exception still fails the test."""

    item: pytest.Item | None = None
    _replaced: Callable[[], None] | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self._replaced = set_fallback_guard(self._check)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        set_fallback_guard(self._replaced)  # a pytester run inside a test puts the outer one back

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.item = item
        try:
            return (yield)
        finally:
            self.item = None

    def _check(self) -> None:
        item = self.item
        if item is None:  # outside a test: collection, plugins, the session's own start
            return
        if "infra" in getattr(item, "fixturenames", ()):
            message = (
                f"{item.nodeid}: get_infra() was called while the infra fixture was not set: by "
                "a fixture set up before it (or torn down after it); make that fixture request "
                "infra"
            )
        else:
            message = (
                f"{item.nodeid} reached get_infra() (directly, or through start_run, "
                "run_until_idle, ...) without the infra fixture, so it would share the "
                "process-wide default infrastructure: add an `infra` argument to the test (or to "
                "the fixture that uses it), or mark it @pytest.mark.usefixtures('infra')"
            )
        message += f" (--agents-run-require-infra / {REQUIRE_INFRA_INI})"
        item.stash.setdefault(_violations_key, []).append(message)
        raise InfraNotRequested(message)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        violations = item.stash.get(_violations_key, [])
        if violations:
            del item.stash[_violations_key]
            if report.passed:  # the error was caught on its way up: the test still fails
                report.outcome = "failed"
                report.longrepr = violations[0]
        return report
