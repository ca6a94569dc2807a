"""Helpers shared by the test modules: real ISO 3166 lookups and polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pycountry


def country_name(alpha_2: str) -> str:
    return pycountry.countries.get(alpha_2=alpha_2).name


def country_name_upper(alpha_2: str) -> str:
    return country_name(alpha_2).upper()


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    """Return True once ``condition()`` holds, checking every 10 ms for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        pause.wait(0.01)
    return condition()
