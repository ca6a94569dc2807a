"""shadowfn: run a candidate implementation beside a production function and record where they differ.

    from shadowfn import shadow

    @shadow(candidate=encode_v2, rate=10, timeout=0.05)
    def encode(record): ...

The caller always gets the production result, unchanged and without waiting.
Differences are kept in ``shadowfn.log``, counted in ``shadowfn.stats()`` and
logged with structlog under the logger name ``shadowfn``.
"""

from __future__ import annotations

from ._api import adrain, configure, drain, stats
from ._config import ShadowConfig
from ._control import ShadowControl
from ._control import divergence_log as log
from ._decorator import CandidateNotFoundWarning, shadow
from ._divergence import BodyDiff, Change, Divergence, HeaderDiff
from ._log import DivergenceEntry, DivergenceLog
from ._metrics import disable_metrics, enable_metrics
from ._noise import NoiseStats
from ._readiness import ReadinessReport
from ._records import ResponseRecord
from ._replay import Call, DivergenceGroup, ReplayExample, ReplaySummary, ReplayTiming, areplay, replay
from ._runtime import disable, enable, is_enabled, is_shadow
from ._sampling import should_shadow
from ._shadower import Shadower, ShadowOutcome
from ._stats import FunctionStats
from ._strict import DivergenceError, strict
from ._tolerance import Tolerance

__all__ = [
    "BodyDiff",
    "Call",
    "CandidateNotFoundWarning",
    "Change",
    "Divergence",
    "DivergenceEntry",
    "DivergenceError",
    "DivergenceGroup",
    "DivergenceLog",
    "FunctionStats",
    "HeaderDiff",
    "NoiseStats",
    "ReadinessReport",
    "ReplayExample",
    "ReplaySummary",
    "ReplayTiming",
    "ResponseRecord",
    "ShadowConfig",
    "ShadowControl",
    "ShadowOutcome",
    "Shadower",
    "Tolerance",
    "adrain",
    "areplay",
    "configure",
    "disable",
    "disable_metrics",
    "drain",
    "enable",
    "enable_metrics",
    "is_enabled",
    "is_shadow",
    "log",
    "replay",
    "shadow",
    "should_shadow",
    "stats",
    "strict",
]

__version__ = "0.1.0"
