"""Per-function shadowing state: settings, sampling and admission of one call."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import random
import threading
from collections.abc import Callable
from typing import Any

from . import _events
from ._call import ShadowCall, error_fields, reraise_interrupt
from ._config import ShadowConfig, check_rate
from ._executor import admission, loop_thread, tracker
from ._keys import KeyBuilder, UnencodableError, qualified_name
from ._log import DivergenceLog
from ._noise import NoiseRun, NoiseStats, NoiseTracker
from ._readiness import ReadinessReport
from ._records import error_text
from ._sampling import decide, split_rate
from ._stats import FunctionStats, registry
from ._strict import note_skipped, take_skipped

__all__ = ["ShadowControl", "divergence_log", "is_async_callable"]

divergence_log = DivergenceLog()

_shed_warnings = _events.RateLimiter()
_ANY_ARGUMENTS = inspect.Signature(
    [
        inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
)
_TASKS: set[asyncio.Task[None]] = set()


def is_async_callable(target: Any) -> bool:
    """Return whether calling ``target`` returns a coroutine (functions, methods, async ``__call__``)."""
    if inspect.iscoroutinefunction(target):
        return True
    return callable(target) and inspect.iscoroutinefunction(type(target).__call__)


class ShadowControl:
    """The live settings and counters of one shadowed function, exposed as ``wrapped.shadow``.

    ``rate`` and ``enabled`` can be set at run time from any thread; the next call
    sees the new value.
    """

    def __init__(
        self,
        *,
        name: str,
        candidate: Callable[..., Any] | str,
        config: ShadowConfig,
        enabled: bool,
        signature: inspect.Signature | None,
        method_kind: str,
        primary_is_async: bool = False,
        candidate_binds: bool = False,
    ) -> None:
        self.name = name
        self.candidate = candidate
        self.config = config
        self.counters = registry.counters(name)
        self.log = divergence_log
        self.noise_tracker = NoiseTracker() if config.noise_rate > 0 else None
        self._method_kind = method_kind
        # A coroutine candidate runs on the caller's loop only under an async primary.
        self.primary_is_async = primary_is_async
        self._candidate_binds = candidate_binds
        self._enabled = bool(enabled)
        self._set_rate(config.rate)
        self._warned_types: set[tuple[str, str]] = set()
        self._warned_lock = threading.Lock()
        self._candidate_is_async = None if isinstance(candidate, str) else is_async_callable(candidate)
        self._builders: dict[bool, KeyBuilder] = {}
        if signature is None:
            # Without an introspectable signature, key on the arguments as given.
            signature = _ANY_ARGUMENTS
        for skip_first in (False, True):
            self._builders[skip_first] = KeyBuilder(signature, config.key, skip_first=skip_first)

    def __repr__(self) -> str:
        return f"<ShadowControl {self.name} rate={self._rate} enabled={self._enabled}>"

    # Settings --------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Percent of keys shadowed, in [0, 100]; settable at run time."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._set_rate(check_rate(value))

    def _set_rate(self, value: float) -> None:
        whole, fraction = split_rate(value)
        # One tuple, replaced in one assignment, so a call on another thread never
        # sees the whole part of one rate with the fraction of another.
        self._sampling = (value, whole, fraction)
        self._rate = value

    @property
    def enabled(self) -> bool:
        """Whether this function is shadowed at all; settable at run time."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"enabled must be True or False, got {value!r:.80} ({type(value).__name__})")
        self._enabled = value

    @property
    def timeout(self) -> float:
        """Seconds the candidate may run before the call counts as a timeout."""
        return self.config.timeout

    @property
    def stats(self) -> FunctionStats:
        """A snapshot of this function's counters (shared with functions of the same name)."""
        return self.counters.snapshot()

    def report(self) -> ReadinessReport:
        """Return this function's readiness report: compared calls, distinct keys, divergence rate.

        ``report().ready(max_divergence_rate=0.001, min_samples=10000)`` returns
        whether the candidate meets those thresholds. Counts are those of
        ``stats`` (shared with functions of the same name); calls still pending
        are not in it yet, so call ``shadowfn.drain()`` first for exact figures.
        """
        stats = self.counters.snapshot()
        return ReadinessReport.build(
            self.name,
            matched=stats.matched,
            diverged=stats.diverged,
            keys=self.counters.keys,
            timeouts=stats.timeouts,
            errors=stats.compare_errors + stats.internal_errors,
        )

    @property
    def noise(self) -> NoiseStats | None:
        """A snapshot of the noise evidence, or None when ``noise_rate`` is 0."""
        if self.noise_tracker is None:
            return None
        return self.noise_tracker.snapshot()

    # One call ---------------------------------------------------------------

    def begin(
        self,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        primary: Callable[..., Any] | None = None,
        *,
        on_running_loop: bool = True,
    ) -> ShadowCall | None:
        """Decide, admit and start the shadow side of one call; None when the call is not shadowed.

        ``primary``, the callable the wrapper is about to call, is needed only
        for noise runs. A coroutine candidate runs as a task on the caller's
        running event loop when there is one and ``on_running_loop`` is true,
        else on shadowfn's background loop. A caller that blocks its own loop
        while it waits for the outcome must pass ``on_running_loop=False``.

        A failure here, of shadowfn or of a key function or ``__deepcopy__``,
        counts as an internal error and is not raised. The one exception is
        KeyboardInterrupt, re-raised after counting because it may be the
        user's Ctrl-C.
        """
        # A strict-mode note left by a caller that never takes it, such as a
        # Shadower, must not fail the next decorated call in this context.
        take_skipped()
        try:
            # 1. Sampling, inline here because most calls end at this step.
            # Rate 100 needs no key, so none is built on the caller's path.
            # NOTE: so an unencodable argument is shadowed at rate 100 but unkeyable below it.
            key: bytes | None = None
            if (
                instance is None
                and args
                and isinstance(self.candidate, str)
                and self._method_kind == "function"
            ):
                # A method called unbound, as property and cached_property call their
                # getter: the first argument is the instance to look the candidate up on.
                instance, args = args[0], args[1:]
            builder = self._builder(instance)
            # One read of the rate tuple, so a concurrent rate change cannot mix two rates.
            rate, whole, fraction = self._sampling
            if rate <= 0:
                return None
            if rate < 100:
                try:
                    key = builder.build(args, kwargs)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    # SystemExit too: the key function's failure, not the caller's.
                    self.counters.count_call(True, "unkeyable")
                    note_skipped("unkeyable")
                    self._warn_unkeyable(exc)
                    return None
                if not decide(key, whole, fraction):
                    self.counters.count_unsampled()
                    return None

            return self._admit_and_start(instance, args, kwargs, primary, key, builder, on_running_loop)
        except BaseException as exc:
            # BaseException too: a key function's or a __deepcopy__'s SystemExit is
            # theirs, not the caller's. Only KeyboardInterrupt is re-raised, below.
            self.counters.count_call(True, "internal_errors")
            note_skipped("internal_errors")
            _events.emit(
                "error",
                "shadow.internal_error",
                None,
                function=self.name,
                stage="admission",
                **error_fields(exc, self.config.redactor),
            )
            reraise_interrupt(exc)
            return None

    def _admit_and_start(
        self,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        primary: Callable[..., Any] | None,
        key: bytes | None,
        builder: KeyBuilder,
        on_running_loop: bool,
    ) -> ShadowCall | None:
        counters = self.counters
        original = (args, kwargs)

        # 2. Admission against the pending bounds.
        if not admission.try_acquire(self.name, self.config.max_pending):
            counters.count_call(True, "shed")
            note_skipped("shed")
            self._warn_shed()
            return None

        # 3. The candidate's own copy of the arguments.
        started = False
        try:
            if self.config.copy_args:
                copied = self._copy_arguments(args, kwargs)
                if copied is None:
                    counters.count_call(True, "uncopyable")
                    note_skipped("uncopyable")
                    return None
                args, kwargs = copied
            candidate = self._resolve_candidate(instance)
            if candidate is None:
                counters.count_call(True, "internal_errors")
                note_skipped("internal_errors")
                return None

            # 4. Start it.
            generation = counters.count_call(True)
            tracker.opened()
            started = True
            call = ShadowCall(
                self,
                candidate,
                args,
                kwargs,
                key,
                contextvars.copy_context(),
                None if key is not None else builder.build,
            )
            call.generation = generation
            try:
                self._start(call, candidate, on_running_loop)
            except KeyboardInterrupt:
                # The call is already counted and tracked: settle it so drain() and
                # the pending bound do not wait for a candidate that never started.
                call.start_failed(KeyboardInterrupt())
                raise
            except BaseException as exc:
                call.start_failed(exc)
                return None
            if primary is not None and self.noise_tracker is not None:
                try:
                    self._start_noise(call, primary, *original)
                except KeyboardInterrupt:
                    # Re-raised to the caller, whose primary then never reports to
                    # the call: settle it here so it does not stay pending.
                    call.abandon()
                    raise
            return call
        finally:
            if not started:
                admission.release(self.name)

    def _builder(self, instance: Any) -> KeyBuilder:
        skip_first = self._method_kind == "classmethod" or (
            self._method_kind == "function" and instance is not None
        )
        return self._builders[skip_first]

    def _start(self, call: ShadowCall, candidate: Callable[..., Any], on_running_loop: bool) -> None:
        is_async = self._candidate_is_async
        if is_async is None:
            is_async = is_async_callable(candidate)
        if not is_async:
            call.start_in_pool()
        elif self.primary_is_async and on_running_loop:
            call.start_task(asyncio.get_running_loop(), _TASKS)
        else:
            # A sync primary blocks its thread, even when that thread runs an
            # event loop, so its coroutine candidate runs on shadowfn's own loop.
            loop_thread.submit(call.start_task, call.context.copy())

    def _start_noise(
        self, call: ShadowCall, primary: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Start a second run of the pure primary on ``noise_rate`` percent of sampled calls."""
        noise_tracker = self.noise_tracker
        assert noise_tracker is not None
        if random.random() * 100 >= self.config.noise_rate:
            return
        if not admission.try_acquire(self.name, self.config.max_pending):
            noise_tracker.record_skipped()
            return
        try:
            if self.config.copy_args:
                args, kwargs = copy.deepcopy((args, kwargs))
            run = NoiseRun(self, primary, args, kwargs, contextvars.copy_context())
            if self.primary_is_async:
                run.start_task(asyncio.get_running_loop(), _TASKS)
            else:
                run.start_in_pool()
        except BaseException as exc:
            # BaseException too: a __deepcopy__'s SystemExit must not cost the call
            # its primary's report, which would leave it pending for good.
            admission.release(self.name)
            noise_tracker.record_skipped()
            reraise_interrupt(exc)
            return
        call.attach_noise(run)

    def _resolve_candidate(self, instance: Any) -> Callable[..., Any] | None:
        candidate = self.candidate
        if not isinstance(candidate, str):
            if self._candidate_binds and instance is not None and self._method_kind != "staticmethod":
                # A function candidate has the primary's signature, so it takes self or cls too.
                return functools.partial(candidate, instance)
            return candidate
        owner = instance
        found = getattr(owner, candidate, None) if owner is not None else None
        if found is None or not callable(found):
            self._warn_once(
                "missing-candidate",
                f"candidate method {candidate!r} not found on {type(owner).__name__ if owner is not None else 'None'}",
                "shadow.internal_error",
                "error",
                fix="name a method of the same class, or pass the candidate function itself",
            )
            return None
        resolved: Callable[..., Any] = found
        return resolved

    def _copy_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        try:
            # One deepcopy over both keeps objects shared between arguments shared.
            return copy.deepcopy((args, kwargs))
        except KeyboardInterrupt:
            raise
        except BaseException:
            pass
        for value in (*args, *kwargs.values()):
            try:
                copy.deepcopy(value)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._warn_once(
                    qualified_name(type(value)),
                    f"cannot deep-copy an argument of type {qualified_name(type(value))}: "
                    f"{self.config.redactor.error(error_text(exc))}",
                    "shadow.uncopyable",
                    "warning",
                    fix="pass copy_args=False if the candidate does not mutate its arguments",
                )
                return None
        return None

    # Warnings --------------------------------------------------------------------

    def _warn_unkeyable(self, exc: BaseException) -> None:
        if isinstance(exc, UnencodableError):
            type_name = qualified_name(exc.value_type)
            message = f"cannot build a sticky key from an argument of type {type_name}"
        else:
            type_name = qualified_name(type(exc))
            message = f"the key function raised {self.config.redactor.error(error_text(exc))}"
        self._warn_once(
            "unkeyable:" + type_name,
            message,
            "shadow.unkeyable",
            "warning",
            fix="pass key= with a parameter name, a tuple of names or a function returning bytes or str",
        )

    def _warn_shed(self) -> None:
        suppressed = _shed_warnings.allow(self.name)
        if suppressed is not None:
            _events.emit(
                "warning",
                "shadow.shed",
                None,
                function=self.name,
                pending=admission.pending,
                max_pending=self.config.max_pending or admission.max_pending,
                suppressed=suppressed,
            )

    def _warn_once(self, kind: str, message: str, event: str, level: str, *, fix: str) -> None:
        marker = (event, kind)
        with self._warned_lock:
            if marker in self._warned_types:
                return
            self._warned_types.add(marker)
        _events.emit(level, event, None, function=self.name, reason=message, fix=fix)
