"""The shadowfn pytest plugin, registered through the ``pytest11`` entry point.

It adds, and changes nothing for tests that use none of them:

- the ``shadowfn_strict`` marker and fixture: the test runs inside
  :func:`shadowfn.strict`, so a sampled shadowed call waits for its candidate
  and raises :class:`shadowfn.DivergenceError` when the two sides differ. This
  is the one place where shadowfn raises into the caller, by the test author's
  choice. ``@pytest.mark.shadowfn_strict(grace=2.0)`` sets the extra seconds
  waited beyond each function's ``timeout``.
- the ``shadowfn_isolated`` fixture: waits for shadow work left by earlier
  tests, then gives the test an empty divergence log, zeroed counters and
  empty noise evidence, and does the same again after the test.

Disable it with ``-p no:shadowfn``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import shadowfn

from ._log import DivergenceLog
from ._noise import reset_all as _reset_noise
from ._stats import FunctionStats, registry
from ._strict import DEFAULT_GRACE

__all__ = ["IsolatedShadowfn", "shadowfn_isolated", "shadowfn_strict"]

MARKER = "shadowfn_strict"
DRAIN_SECONDS = 10.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(grace={DEFAULT_GRACE}): run the test in shadowfn strict mode: sampled shadowed calls "
        "wait for their candidate and raise shadowfn.DivergenceError when it does not match",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The marker works through the fixture, so fixture setup order and async
    # tests behave the same whichever of the two a test uses.
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker(MARKER) is None:
            continue
        if MARKER not in item.fixturenames:
            item.fixturenames.insert(0, MARKER)


@pytest.fixture
def shadowfn_strict(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the test in shadowfn strict mode (see :func:`shadowfn.strict`)."""
    marker = request.node.get_closest_marker(MARKER)
    grace = DEFAULT_GRACE
    if marker is not None and "grace" in marker.kwargs:
        grace = marker.kwargs["grace"]
    with shadowfn.strict(grace=grace):
        yield


@dataclass(frozen=True)
class IsolatedShadowfn:
    """The value of the ``shadowfn_isolated`` fixture: the divergence log and shortcuts to the counters."""

    log: DivergenceLog

    def stats(self, function: str | None = None) -> dict[str, FunctionStats]:
        """Return the counters by function name, only ``function``'s when given (full name or last part)."""
        everything = shadowfn.stats()
        if function is None:
            return everything
        return {
            name: values
            for name, values in everything.items()
            if name == function or name.endswith("." + function)
        }

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait for pending shadow work (see :func:`shadowfn.drain`)."""
        return shadowfn.drain(timeout=timeout)


def _reset_state() -> None:
    shadowfn.drain(timeout=DRAIN_SECONDS)
    shadowfn.log.clear()
    registry.reset()
    _reset_noise()


@pytest.fixture
def shadowfn_isolated() -> Iterator[IsolatedShadowfn]:
    """Give the test an empty divergence log, zeroed counters and empty noise evidence.

    Shadow work still pending from earlier tests is waited for (up to 10 s)
    before the state is cleared, so it cannot land in this test's log.
    """
    _reset_state()
    yield IsolatedShadowfn(log=shadowfn.log)
    _reset_state()
