"""The public namespace and the module-level functions."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import shadowfn
from shadowfn import shadow

CONTRACT_NAMES = {
    "BodyDiff",
    "Change",
    "Divergence",
    "DivergenceEntry",
    "HeaderDiff",
    "ResponseRecord",
    "disable",
    "drain",
    "enable",
    "is_shadow",
    "log",
    "shadow",
    "should_shadow",
    "stats",
}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_all_is_sorted() -> None:
    assert shadowfn.__all__ == sorted(shadowfn.__all__)


def test_every_name_in_all_exists() -> None:
    for name in shadowfn.__all__:
        assert hasattr(shadowfn, name), name


def test_all_has_no_duplicates() -> None:
    assert len(shadowfn.__all__) == len(set(shadowfn.__all__))


def test_all_includes_contract_names() -> None:
    assert set(shadowfn.__all__) >= CONTRACT_NAMES


def test_star_import_gives_all_names() -> None:
    namespace: dict[str, object] = {}
    exec("from shadowfn import *", namespace)

    assert set(namespace) - {"__builtins__"} == set(shadowfn.__all__)


def test_drain_returns_true_with_nothing_pending() -> None:
    assert shadowfn.drain() is True
    assert shadowfn.drain(timeout=0) is True


def test_drain_returns_true_when_done() -> None:
    @shadow(lambda x: x)
    def primary(x: int) -> int:
        return x

    for value in range(10):
        primary(value)

    assert shadowfn.drain(timeout=5) is True
    assert primary.shadow.stats.matched == 10
    assert primary.shadow.stats.pending == 0


def test_drain_returns_false_on_timeout(release: threading.Event) -> None:
    @shadow(lambda: release.wait(5))
    def primary() -> bool:
        return True

    primary()

    started = time.perf_counter()
    assert shadowfn.drain(timeout=0.05) is False
    assert time.perf_counter() - started < 1.0
    assert primary.shadow.stats.pending == 1
    release.set()
    assert shadowfn.drain(timeout=5) is True


def test_stats_returns_snapshots_by_name() -> None:
    @shadow(lambda: 1, name="api.one")
    def one() -> int:
        return 1

    one()
    assert shadowfn.drain(timeout=5)
    snapshot = shadowfn.stats()
    one()
    assert shadowfn.drain(timeout=5)

    assert snapshot["api.one"].matched == 1
    assert shadowfn.stats()["api.one"].matched == 2


def test_is_shadow_is_false_outside_candidates() -> None:
    assert shadowfn.is_shadow() is False


def test_disable_and_enable_toggle_is_enabled() -> None:
    shadowfn.disable()
    assert shadowfn.is_enabled() is False

    shadowfn.enable()
    assert shadowfn.is_enabled() is True


def test_log_is_a_divergence_log() -> None:
    assert isinstance(shadowfn.log, shadowfn.DivergenceLog)


def test_version_is_a_string() -> None:
    assert isinstance(shadowfn.__version__, str)
    assert shadowfn.__version__.count(".") == 2


@pytest.mark.parametrize("bad", [-1, "1", float("nan"), True])
def test_drain_rejects_invalid_timeout(bad: object) -> None:
    with pytest.raises(ValueError, match="timeout must be None or a number of seconds >= 0") as info:
        shadowfn.drain(timeout=bad)  # type: ignore[arg-type]

    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10"])
def test_configure_rejects_bad_log_capacity(value: object) -> None:
    with pytest.raises(ValueError, match=r"log_capacity must be a positive int, got"):
        shadowfn.configure(log_capacity=value)  # type: ignore[arg-type]


def test_bare_decorator_call_explains_fix() -> None:
    @shadow  # type: ignore[arg-type]
    def lookup(code: str) -> str:
        return code

    with pytest.raises(TypeError, match=r"write @shadow\(candidate\)"):
        lookup("FR")


def test_divergence_just_before_exit_is_logged(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "last_call.py"
    # The result goes to stderr: the events thread writes to stdout at the same time.
    script.write_text(
        "import sys, structlog, shadowfn\n"
        "structlog.configure(processors=[structlog.processors.JSONRenderer()])\n"
        "@shadowfn.shadow(lambda code: code.lower(), name='exit.lookup')\n"
        "def lookup(code):\n"
        "    return code\n"
        "sys.stderr.write('result ' + lookup('FR') + '\\n')\n"
    )

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    assert "result FR" in done.stderr
    assert '"event": "shadow.divergence"' in done.stdout, done.stdout + done.stderr
