"""Strict mode: shadowed calls wait for their candidate and raise on a divergence.

Everywhere else shadowfn never raises into the caller. Strict mode is the one
exception, and only because the user asked for it, in a test or a check script:
inside ``with shadowfn.strict():`` a sampled call waits for its outcome and
raises :class:`DivergenceError` unless the two sides matched.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._divergence import Divergence
from ._records import error_text

if TYPE_CHECKING:
    from ._call import ShadowCall

__all__ = [
    "DivergenceError",
    "StrictBlock",
    "check_async",
    "check_skipped",
    "check_sync",
    "is_strict",
    "note_skipped",
    "strict",
    "take_skipped",
]

DEFAULT_GRACE = 1.0

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _StrictMode:
    grace: float


_STRICT: contextvars.ContextVar[_StrictMode | None] = contextvars.ContextVar("shadowfn_strict", default=None)
# The strict modes that enclosing blocks set, innermost last, to restore on exit.
_OUTER: contextvars.ContextVar[tuple[_StrictMode | None, ...]] = contextvars.ContextVar(
    "shadowfn_strict_outer", default=()
)
# The outcome of a call that started no candidate, noted by the admission step in
# strict mode and taken by the wrapper right after it.
_SKIPPED: contextvars.ContextVar[str | None] = contextvars.ContextVar("shadowfn_strict_skipped", default=None)

_SKIP_REASONS = {
    "shed": "it was shed because max_pending candidates were already pending",
    "unkeyable": "no sticky key could be built from its arguments (pass key=)",
    "uncopyable": "an argument cannot be deep-copied (pass copy_args=False if the candidate does not mutate it)",
    "internal_errors": "shadowfn failed before the candidate started (see the shadow.internal_error event)",
}


class DivergenceError(AssertionError):
    """Raised in strict mode when a shadowed call's candidate did not match its primary.

    Only :func:`shadowfn.strict` makes shadowfn raise into the caller, and the
    pytest plugin's ``shadowfn_strict`` marker and fixture use it. The class
    derives from ``AssertionError`` because it reports a failed check.

    Attributes:
        function: The shadowed function's name.
        outcome: ``diverged``, ``timeouts``, ``compare_errors``, ``internal_errors``
            or ``no_outcome`` (nothing settled within the strict wait).
        divergence: The structured difference, for ``diverged``; else None.
        candidate_error: The exception the candidate raised, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        function: str,
        outcome: str,
        divergence: Divergence | None = None,
        candidate_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.function = function
        self.outcome = outcome
        self.divergence = divergence
        self.candidate_error = candidate_error


# Reported as ``shadowfn.DivergenceError``, the name users import and catch.
DivergenceError.__module__ = "shadowfn"


def strict(*, grace: float = DEFAULT_GRACE) -> StrictBlock:
    """Make sampled shadowed calls in this context wait for their candidate and raise on a mismatch.

    Inside the block, a call that is sampled (the ``rate`` still applies) waits
    until its outcome is known: at most the function's ``timeout`` plus
    ``grace`` seconds. It then returns the primary's result or re-raises the
    primary's exception when the two sides matched, and raises
    :class:`DivergenceError` when they diverged, the candidate timed out, or the
    comparison failed. When the primary raised, the ``DivergenceError`` is
    chained to that exception. A sampled call that started no candidate (shed,
    unkeyable, uncopyable) raises it too, once the primary has returned.

    This is the one place where shadowfn raises into the caller, by the user's
    explicit choice; outside the block nothing changes. The setting lives in a
    ``contextvars.ContextVar``, so it covers this thread or task and the tasks
    it starts, never other threads. An async primary waits with ``await``, so
    the event loop keeps running.

    The result also decorates a function or a coroutine function, which then
    runs inside its own strict block on each call.

    Raises:
        ValueError: ``grace`` is not a finite number of seconds >= 0.
    """
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < math.inf:
        raise ValueError(
            f"grace must be a finite number of seconds >= 0, got {grace!r} ({type(grace).__name__})"
        )
    return StrictBlock(_StrictMode(grace=float(grace)))


class StrictBlock:
    """The context manager and decorator that :func:`strict` returns."""

    def __init__(self, mode: _StrictMode) -> None:
        self._mode = mode

    def __enter__(self) -> None:
        # The modes to restore are kept per context, not on the block, so one
        # block can be entered from several threads or tasks at once.
        _OUTER.set((*_OUTER.get(), _STRICT.get()))
        _STRICT.set(self._mode)

    def __exit__(self, *exc_info: object) -> None:
        outer = _OUTER.get()
        _STRICT.set(outer[-1])
        _OUTER.set(outer[:-1])

    def __call__(self, function: F) -> F:
        # contextlib's decorator form would leave a coroutine function's body,
        # which runs only when awaited, outside the block.
        mode = self._mode
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with StrictBlock(mode):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with StrictBlock(mode):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]


def is_strict() -> bool:
    """Return whether strict mode is on in the current context."""
    return _STRICT.get() is not None


def note_skipped(outcome: str) -> None:
    """Note, in strict mode only, that the current call was counted as ``outcome`` without a candidate."""
    if _STRICT.get() is not None:
        _SKIPPED.set(outcome)


def take_skipped() -> str | None:
    """Return and clear the outcome noted by :func:`note_skipped` for the current call."""
    outcome = _SKIPPED.get()
    if outcome is not None:
        _SKIPPED.set(None)
    return outcome


def check_skipped(name: str, outcome: str | None) -> None:
    """Raise DivergenceError when a call in strict mode could not be compared at all."""
    __tracebackhide__ = True
    if outcome is None:
        return
    reason = _SKIP_REASONS.get(outcome, outcome)
    raise DivergenceError(
        f"{name}: strict mode could not compare this call: {reason}",
        function=name,
        outcome=outcome,
    )


def check_sync(call: ShadowCall) -> None:
    """Block until ``call`` settles, then raise DivergenceError unless it matched; no-op outside strict mode."""
    __tracebackhide__ = True  # pytest shows the test's line, not shadowfn's frames.
    mode = _STRICT.get()
    if mode is None:
        return
    limit = call.control.config.timeout + mode.grace
    settled = call.wait(limit)
    _raise_unless_matched(call, settled, limit)


async def check_async(call: ShadowCall) -> None:
    """Await the outcome of ``call`` without blocking the loop, then raise as :func:`check_sync` does."""
    __tracebackhide__ = True
    mode = _STRICT.get()
    if mode is None:
        return
    limit = call.control.config.timeout + mode.grace
    loop = asyncio.get_running_loop()
    settled_future: asyncio.Future[None] = loop.create_future()

    def wake(_: ShadowCall) -> None:
        # Runs on whichever thread settles the call.
        loop.call_soon_threadsafe(_resolve, settled_future)

    call.add_done_callback(wake)
    try:
        await asyncio.wait_for(settled_future, limit)
        settled = True
    except asyncio.TimeoutError:
        settled = call.done()
    _raise_unless_matched(call, settled, limit)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _raise_unless_matched(call: ShadowCall, settled: bool, limit: float) -> None:
    __tracebackhide__ = True
    name = call.control.name
    if not settled:
        raise DivergenceError(
            f"{name}: no shadow outcome within {limit:g} s in strict mode "
            "(the candidate or the comparison did not finish)",
            function=name,
            outcome="no_outcome",
        )
    outcome = call.outcome
    if outcome in ("matched", "cancelled", None):
        return
    if outcome == "diverged":
        lines = [f"{name}: the candidate diverged from the primary"]
        if call.divergence is not None:
            lines.extend("  " + line for line in describe_divergence(call.divergence))
        if call.noisy_paths:
            lines.append(
                "  noisy paths (the primary also differs from itself there): " + ", ".join(call.noisy_paths)
            )
        lines.extend(_traceback_lines("candidate traceback", call.candidate_error))
    elif outcome == "timeouts":
        lines = [f"{name}: the candidate did not finish within timeout={call.control.config.timeout:g} s"]
    else:
        stage = "the comparison" if outcome == "compare_errors" else "shadowfn"
        error = error_text(call.error) if call.error is not None else "unknown error"
        lines = [f"{name}: {stage} failed: {error}"]
        lines.extend(_traceback_lines("traceback", call.error))
    raise DivergenceError(
        "\n".join(lines),
        function=name,
        outcome=outcome,
        divergence=call.divergence,
        candidate_error=call.candidate_error,
    )


def describe_divergence(divergence: Divergence) -> list[str]:
    """Return the divergence as readable lines, one per difference (body changes capped at 50)."""
    lines: list[str] = []
    if divergence.ok is not None:
        side = "candidate" if divergence.ok[0] else "primary"
        lines.append(f"ok: {divergence.ok[0]} -> {divergence.ok[1]} (only the {side} raised)")
    if divergence.error is not None:
        lines.append(f"error: {divergence.error[0]!r} -> {divergence.error[1]!r}")
    if divergence.status is not None:
        lines.append(f"status: {divergence.status[0]} -> {divergence.status[1]}")
    headers = divergence.headers
    if headers is not None:
        lines.extend(f"headers.{name} added" for name in headers.added)
        lines.extend(f"headers.{name} removed" for name in headers.removed)
        lines.extend(f"headers.{name} changed" for name in headers.changed)
    body = divergence.body
    if body is not None:
        lines.extend(str(change) for change in body.changes)
        hidden = body.total_changes - len(body.changes)
        if hidden > 0:
            lines.append(f"... and {hidden} more body changes")
        if body.prefix_equal is not None:
            lines.append(
                f"body lengths {body.primary_len} -> {body.candidate_len}, "
                f"first difference at offset {body.prefix_equal}"
            )
    if divergence.note:
        lines.append(divergence.note)
    return lines


def _traceback_lines(title: str, error: BaseException | None) -> list[str]:
    if error is None:
        return []
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return [f"{title}:", *("  " + line for line in text.rstrip().splitlines())]
