"""The explicit form of ``@shadow``: run both sides of one call and return both outcomes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from ._call import ShadowCall
from ._config import ShadowConfig
from ._control import ShadowControl, is_async_callable
from ._decorator import _check_key_names, _describe, _reject_generators, _signature_of, default_name
from ._divergence import Divergence
from ._records import ResponseRecord, snapshot, snapshot_exception
from ._runtime import _IN_CANDIDATE, SWITCH

__all__ = ["ShadowOutcome", "Shadower"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Outcome labels that are not counter names: the candidate did not run, or its
# comparison had not finished when the caller stopped waiting.
UNSAMPLED = "unsampled"
NOT_RUN = "not_run"
PENDING = "pending"


@dataclasses.dataclass(frozen=True)
class ShadowOutcome(Generic[T]):
    """Both sides of one call made through a :class:`Shadower`.

    Attributes:
        primary: The primary's record.
        candidate: The candidate's record, or None when the candidate did not run,
            timed out, or its comparison failed or had not finished.
        divergence: The difference between the records, or None when they match
            or were not compared.
        sampled: Whether the candidate ran for this call. False when sampling did
            not select the call, when shadowing is off, and when the call was shed,
            unkeyable or uncopyable (``outcome`` and the counters tell which).
        candidate_failed: Whether the candidate raised, timed out or was cancelled,
            whatever the comparison found.
        outcome: The counter the call was counted under (``matched``, ``diverged``,
            ``timeouts``, ``compare_errors``, ...), ``unsampled`` when the candidate
            did not run, ``not_run`` when a replay could not start it (shed,
            uncopyable arguments, internal error), or
            ``pending`` when the comparison had not finished in time.
        primary_ms: Milliseconds the primary ran.
        candidate_ms: Milliseconds the candidate ran, or None when unknown.
        candidate_error: The exception the candidate raised, if it raised.
    """

    primary: ResponseRecord
    candidate: ResponseRecord | None
    divergence: Divergence | None
    sampled: bool
    candidate_failed: bool
    outcome: str = UNSAMPLED
    primary_ms: float = 0.0
    candidate_ms: float | None = None
    candidate_error: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)
    primary_value: dataclasses.InitVar[Any] = None
    primary_error: dataclasses.InitVar[BaseException | None] = None

    def __post_init__(self, primary_value: Any, primary_error: BaseException | None) -> None:
        object.__setattr__(self, "_value", primary_value)
        object.__setattr__(self, "_error", primary_error)

    @property
    def diverged(self) -> bool:
        """Whether the two sides diverged."""
        return self.divergence is not None

    def value(self) -> T:
        """Return the primary's return value, or re-raise its exception (the same object)."""
        error: BaseException | None = self.__dict__["_error"]
        if error is not None:
            raise error
        value: T = self.__dict__["_value"]
        return value


class Shadower(Generic[P, R]):
    """Run a primary and a candidate side by side on explicit calls, without a decorator.

    ``call()`` (for a sync primary) or ``await acall()`` (for a coroutine primary)
    starts the candidate on its own copy of the arguments and runs the primary in
    the caller's thread or task. It then waits for the candidate up to
    ``config.timeout`` and returns a :class:`ShadowOutcome`. Sampling, ignore rules, records, the
    divergence log, structlog events and counters are the decorator's. The
    primary's exception is kept in the outcome, not raised: ``outcome.value()``
    re-raises it. Exceptions that are not ``Exception`` subclasses (cancellation,
    ``KeyboardInterrupt``) propagate at once.

    A Shadower keeps no per-call state, so one instance can be shared by any
    number of threads. Creating one costs about as much as decorating a function
    (an ``inspect.signature`` call and two key builders).

    Raises:
        TypeError, ValueError: at creation, for a primary or candidate that is not
            a callable returning its result, a config that is not a ShadowConfig,
            or a ``key`` naming a parameter the primary does not have.
    """

    def __init__(
        self,
        primary: Callable[P, R],
        candidate: Callable[..., Any],
        config: ShadowConfig | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if not callable(primary):
            raise TypeError(f"primary must be a callable, got {_describe(primary)}")
        if not callable(candidate):
            raise TypeError(
                f"candidate must be a callable (a bound method for methods), got {_describe(candidate)}"
            )
        # A primary already decorated with @shadow would shadow every call twice.
        if isinstance(getattr(primary, "shadow", None), ShadowControl):
            primary = primary.__wrapped__  # type: ignore[attr-defined]
        _reject_generators(primary, "primary")
        _reject_generators(candidate, "candidate")
        if config is None:
            config = ShadowConfig()
        elif not isinstance(config, ShadowConfig):
            raise TypeError(f"config must be a ShadowConfig, got {_describe(config)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string or None, got {_describe(name)}")

        qualified = name or default_name(primary)
        signature = _signature_of(primary)
        _check_key_names(config, signature, qualified)
        self._primary = primary
        self._is_async = is_async_callable(primary)
        self._always = False
        self._control = ShadowControl(
            name=qualified,
            candidate=candidate,
            config=config,
            enabled=True,
            signature=signature,
            method_kind="function",
            primary_is_async=self._is_async,
        )

    def __repr__(self) -> str:
        return f"<Shadower {self.name} rate={self.config.rate} timeout={self.config.timeout}>"

    @property
    def name(self) -> str:
        """The name in logs, ``shadowfn.log`` and ``shadowfn.stats()``."""
        return self._control.name

    @property
    def primary(self) -> Callable[P, R]:
        """The production callable, whose outcome the caller gets."""
        return self._primary

    @property
    def candidate(self) -> Callable[..., Any]:
        """The new implementation under comparison."""
        candidate: Callable[..., Any] = self._control.candidate  # type: ignore[assignment]
        return candidate

    @property
    def config(self) -> ShadowConfig:
        """The settings this Shadower was created with."""
        return self._control.config

    @property
    def is_async(self) -> bool:
        """Whether the primary is a coroutine function, to be called with ``acall()``."""
        return self._is_async

    def _for_replay(self) -> Shadower[P, R]:
        """Return a Shadower of the same name that shadows every call.

        It ignores the sampling rate, ``shadowfn.disable()`` and
        ``SHADOWFN_DISABLED``, because a replay is an explicit request to compare.
        """
        other: Shadower[P, R] = Shadower(
            self._primary, self.candidate, self.config.with_rate(100), name=self.name
        )
        other._always = True
        return other

    # One call ------------------------------------------------------------------

    def _begin(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], on_running_loop: bool
    ) -> ShadowCall | None:
        control = self._control
        if not self._always and (not SWITCH.enabled or control.rate <= 0 or _IN_CANDIDATE.get()):
            return None
        # The primary goes along so that noise_rate can run it a second time.
        return control.begin(None, args, kwargs, self._primary, on_running_loop=on_running_loop)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> ShadowOutcome[R]:
        """Call the primary and, when sampled, the candidate; wait for both and compare.

        Waits for the candidate at most ``config.timeout`` seconds after it started,
        and then at most as long again for the comparison.

        Raises:
            TypeError: the primary is a coroutine function; use ``acall()``.
            BaseException: what the primary raises, when it is not an ``Exception``.
        """
        if self._is_async:
            raise TypeError(
                f"{self.name} is a coroutine function: use 'await shadower.acall(...)', not call()"
            )
        # The caller's thread blocks below, so a coroutine candidate must not run
        # on an event loop this thread is running.
        shadow_call = self._begin(args, kwargs, on_running_loop=False)
        started = time.perf_counter()
        try:
            value: Any = self._primary(*args, **kwargs)
        except Exception as exc:
            seconds = time.perf_counter() - started
            if shadow_call is not None:
                shadow_call.primary_raised(exc, seconds)
                shadow_call.wait(self._wait_seconds(shadow_call))
            return self._outcome(shadow_call, None, exc, seconds)
        except BaseException as exc:
            if shadow_call is not None:
                shadow_call.primary_raised(exc, time.perf_counter() - started)
            raise

        seconds = time.perf_counter() - started
        if shadow_call is not None:
            shadow_call.primary_returned(value, seconds)
            shadow_call.wait(self._wait_seconds(shadow_call))
        return self._outcome(shadow_call, value, None, seconds)

    async def acall(self, *args: P.args, **kwargs: P.kwargs) -> ShadowOutcome[Any]:
        """Await the primary and, when sampled, the candidate; wait for both and compare.

        The wait does not block the event loop. It lasts at most ``config.timeout``
        seconds after the candidate started, and then at most as long again for
        the comparison.

        Raises:
            TypeError: the primary is not a coroutine function; use ``call()``.
            BaseException: what the primary raises, when it is not an ``Exception``
                (``asyncio.CancelledError`` included).
        """
        if not self._is_async:
            raise TypeError(f"{self.name} is not a coroutine function: use call(), not acall()")
        shadow_call = self._begin(args, kwargs, on_running_loop=True)
        started = time.perf_counter()
        try:
            value: Any = await self._primary(*args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            seconds = time.perf_counter() - started
            if shadow_call is not None:
                shadow_call.primary_raised(exc, seconds)
                await _settled(shadow_call, self._wait_seconds(shadow_call))
            return self._outcome(shadow_call, None, exc, seconds)
        except BaseException as exc:
            if shadow_call is not None:
                shadow_call.primary_raised(exc, time.perf_counter() - started)
            raise

        seconds = time.perf_counter() - started
        if shadow_call is not None:
            shadow_call.primary_returned(value, seconds)
            await _settled(shadow_call, self._wait_seconds(shadow_call))
        return self._outcome(shadow_call, value, None, seconds)

    def _wait_seconds(self, shadow_call: ShadowCall) -> float:
        timeout = self.config.timeout
        left = shadow_call.started + timeout - time.perf_counter()

        return max(left, 0.0) + timeout

    def _outcome(
        self, shadow_call: ShadowCall | None, value: Any, error: BaseException | None, seconds: float
    ) -> ShadowOutcome[Any]:
        primary_ms = seconds * 1000
        primary = None
        if shadow_call is not None and shadow_call.done():
            primary = shadow_call.primary_record
        if primary is None:
            primary = self._primary_record(value, error)

        if shadow_call is None:
            return ShadowOutcome(
                primary,
                None,
                None,
                False,
                False,
                NOT_RUN if self._always else UNSAMPLED,
                primary_ms,
                None,
                None,
                value,
                error,
            )
        if not shadow_call.done():
            return ShadowOutcome(
                primary, None, None, True, False, PENDING, primary_ms, None, None, value, error
            )

        outcome = shadow_call.outcome or PENDING
        candidate_error = shadow_call.candidate_error
        failed = outcome in ("timeouts", "cancelled") or candidate_error is not None
        candidate_ms = None if outcome == "timeouts" else shadow_call.candidate_ms
        return ShadowOutcome(
            primary,
            shadow_call.candidate_record,
            shadow_call.divergence,
            True,
            failed,
            outcome,
            primary_ms,
            candidate_ms,
            candidate_error,
            value,
            error,
        )

    def _primary_record(self, value: Any, error: BaseException | None) -> ResponseRecord:
        """Snapshot the primary when the shadow call has no record of it; never raises."""
        if error is not None:
            return snapshot_exception(error)
        try:
            return snapshot(value, self.config.adapter)
        except Exception:
            pass
        try:
            # The adapter failed, which the counters already show as a compare error.
            return snapshot(value)
        except Exception:
            return ResponseRecord(ok=True, body=None)


async def _settled(shadow_call: ShadowCall, timeout: float) -> None:
    """Wait until ``shadow_call`` settles or ``timeout`` seconds pass, without blocking the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def on_done(_: ShadowCall) -> None:
        # Runs on whichever thread settles the call.
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass

    shadow_call.add_done_callback(on_done)
    try:
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        pass
