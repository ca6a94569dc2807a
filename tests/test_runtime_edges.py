"""The SHADOWFN_DISABLED kill switch read at import: which values turn shadowing off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = "import structlog, shadowfn\nprint(shadowfn.is_enabled())\n"


def _enabled_with(value: str) -> tuple[str, str]:
    environment = {**os.environ, "SHADOWFN_DISABLED": value}
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=environment, timeout=30, check=True
    )
    lines = done.stdout.strip().splitlines()
    return lines[-1], "\n".join(lines[:-1]) + done.stderr


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " yes ", "on"])
def test_true_values_disable(value: str) -> None:
    enabled, output = _enabled_with(value)

    assert enabled == "False"
    assert "SHADOWFN_DISABLED" not in output


@pytest.mark.parametrize("value", ["", " ", "0", "false", "No", "off"])
def test_false_values_leave_shadowing_on(value: str) -> None:
    enabled, output = _enabled_with(value)

    assert enabled == "True"
    assert "SHADOWFN_DISABLED" not in output


@pytest.mark.parametrize("value", ["disabled", "y", "2", "ture"])
def test_unknown_value_disables_and_warns(value: str) -> None:
    enabled, output = _enabled_with(value)

    assert enabled == "False"
    assert "SHADOWFN_DISABLED" in output
    assert repr(value) in output
