"""One sampled call: the candidate's run, the primary's outcome, and the comparison.

A ``ShadowCall`` settles exactly once, into one outcome. The caller's thread
only records the primary's snapshot; the comparison runs on a worker, and the
timeout on the timer thread or the candidate's event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import datetime
import hashlib
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _events
from ._divergence import Divergence, diff_records
from ._executor import admission, pool, timer, tracker
from ._log import DivergenceEntry
from ._preview import preview
from ._records import ResponseRecord, error_text, snapshot, snapshot_exception
from ._redact import Redactor
from ._runtime import mark_candidate

if TYPE_CHECKING:
    from ._control import ShadowControl

__all__ = ["ShadowCall"]

_RUNNING = "running"
_RETURNED = "returned"
_RAISED = "raised"

_timeout_warnings = _events.RateLimiter()

# The comparison (adapter, compare and diff) gets the candidate's timeout, but at
# least this many seconds: it is a guard against a hung hook, not a latency limit.
MIN_COMPARE_SECONDS = 5.0
# A coroutine candidate is cancelled by wait_for at its timeout, on its own loop;
# the timer backs that up this much later, for a candidate that ignores
# cancellation, so the usual case settles and frees its slot in one step.
CANCEL_GRACE_SECONDS = 0.1
MAX_TRACEBACK_FRAMES = 20


def key_digest(key: bytes) -> str:
    """Return the short hex digest that stands for a key in logs."""
    return hashlib.sha256(key).hexdigest()[:16]


class ShadowCall:
    """The shadow side of one sampled call; every public method is safe to call from any thread."""

    def __init__(
        self,
        control: ShadowControl,
        candidate: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: bytes | None,
        context: contextvars.Context,
        key_from_args: Callable[[tuple[Any, ...], dict[str, Any]], bytes] | None,
    ) -> None:
        self.control = control
        self.candidate = candidate
        self.args = args
        self.kwargs = kwargs
        self.key = key
        self.key_from_args = key_from_args
        self.context = context
        self.started = time.perf_counter()

        self._lock = threading.Lock()
        self._settled = False
        # Jobs of this call that occupy a worker or a task: the candidate's run and
        # a comparison job. The admission slot is released once the call has
        # settled and none is left, so a hung hook still counts against the bound.
        self._holders = 1
        self._released = False
        # The comparison's deadline is armed on the timer only for a call whose
        # comparison is still running when the candidate's deadline passes, so
        # the common call puts one entry on the timer, not two.
        self._deadline_passed = False
        self._compare_deadline: float | None = None
        self._candidate_state = _RUNNING
        self._candidate_value: Any = None
        self._candidate_ms = 0.0
        self._primary: ResponseRecord | None = None
        self._primary_value: Any = None
        self._primary_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._task_loop: asyncio.AbstractEventLoop | None = None
        self._task_keep: set[asyncio.Task[None]] | None = None
        self._candidate_ended = False

        # The result, readable once ``done()`` is true.
        self.outcome: str | None = None
        self.divergence: Divergence | None = None
        self.primary_record: ResponseRecord | None = None
        self.candidate_record: ResponseRecord | None = None
        self.candidate_error: BaseException | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._callbacks: list[Callable[[ShadowCall], None]] = []

    # Waiting for the outcome ------------------------------------------------

    def done(self) -> bool:
        """Return whether the call has settled into its outcome."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the call settles; False when ``timeout`` seconds pass first."""
        return self._done.wait(timeout)

    def add_done_callback(self, callback: Callable[[ShadowCall], None]) -> None:
        """Call ``callback(self)`` once settled, on the settling thread (at once if already settled).

        The callback must not raise or block; its exceptions are swallowed.
        """
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        _run_callback(callback, self)

    # Starting the candidate ------------------------------------------------

    def start_in_pool(self) -> None:
        """Run a sync candidate on the worker pool, with a deadline on the timer thread."""
        _call_at(time.monotonic() + self.control.config.timeout, self, ShadowCall._on_timeout)
        pool.submit(self._run_sync_candidate)

    def start_task(self, loop: asyncio.AbstractEventLoop, keep: set[asyncio.Task[None]]) -> None:
        """Run a coroutine candidate as a task on ``loop``, the running loop; ``keep`` holds a strong reference.

        The task copies the caller's context when it is created, so the candidate
        sees the caller's context variables and its own changes stay in its copy.
        """
        task = loop.create_task(self._run_async_candidate())
        keep.add(task)
        task.add_done_callback(keep.discard)
        self._task, self._task_loop, self._task_keep = task, loop, keep

    # The primary's side, called from the caller's thread or task -----------

    def primary_returned(self, value: Any, seconds: float) -> None:
        """Snapshot the primary's value; called on the caller's path.

        Raises only KeyboardInterrupt, which may be a real Ctrl-C that landed in
        the caller's thread; the call is abandoned first, so it still settles.
        Every other failure, SystemExit included, is counted and contained.
        """
        try:
            config = self.control.config
            try:
                record = snapshot(value, config.adapter)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._settle("compare_errors", error=exc, stage=_snapshot_stage(config.adapter))
                return
            compare_value = _isolated(value) if config.compare is not None else None
            self._primary_done(record, compare_value, seconds)
        except KeyboardInterrupt:
            self.abandon()
            raise
        except BaseException as exc:
            self._settle("internal_errors", error=exc, stage="primary")

    def primary_raised(self, exc: BaseException, seconds: float) -> None:
        """Record the primary's exception; called on the caller's path, raises only KeyboardInterrupt."""
        try:
            if not isinstance(exc, Exception):
                # Cancellation, KeyboardInterrupt, SystemExit: nothing to compare.
                self.abandon()
                return
            self._primary_done(snapshot_exception(exc), None, seconds)
        except KeyboardInterrupt:
            self.abandon()
            raise
        except BaseException as error:
            self._settle("internal_errors", error=error, stage="primary")

    def start_failed(self, error: BaseException) -> None:
        """Settle a call whose candidate could not be started, such as when no thread can start."""
        self._settle("internal_errors", error=error, stage="start")
        self._drop_holder()

    def abandon(self) -> None:
        """Give up on this call (the caller was cancelled): settle as cancelled and stop an async candidate."""
        self._settle("cancelled")
        task, loop = self._task, self._task_loop
        if task is not None and loop is not None and not task.done():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass

    def _primary_done(self, record: ResponseRecord, value: Any, seconds: float) -> None:
        with self._lock:
            self._primary = record
            self._primary_value = value
            self._primary_ms = seconds * 1000
            ready = self._candidate_state != _RUNNING and not self._settled
        if ready:
            self._submit_finish()

    # The candidate's side -----------------------------------------------------

    def _run_sync_candidate(self) -> None:
        try:
            if self._settled:
                return
            self.context.copy().run(self._invoke_sync)
        except BaseException as exc:
            self._settle("internal_errors", error=exc, stage="candidate")
        finally:
            self._end_candidate()

    def _invoke_sync(self) -> None:
        mark_candidate()
        self._compute_key()
        started = time.perf_counter()
        try:
            value = self.candidate(*self.args, **self.kwargs)
        except BaseException as exc:
            # BaseException too: a candidate's SystemExit or KeyboardInterrupt
            # is its failure, not a reason to stop the worker or the process.
            self._candidate_done(_RAISED, exc, time.perf_counter() - started, inline=True)
            return
        if asyncio.iscoroutine(value):
            value.close()
        self._candidate_done(_RETURNED, value, time.perf_counter() - started, inline=True)

    async def _run_async_candidate(self) -> None:
        try:
            timeout = self.control.config.timeout
            # A candidate that ignores cancellation keeps running past wait_for's
            # deadline; the timer settles the call as a timeout all the same.
            _call_at(time.monotonic() + timeout + CANCEL_GRACE_SECONDS, self, ShadowCall._on_timeout)
            mark_candidate()
            self._compute_key()
            started = time.perf_counter()
            try:
                if sys.version_info >= (3, 11):
                    # In the same task: wait_for would start a second one.
                    async with asyncio.timeout(timeout):
                        state, value = await self._guarded_candidate()
                else:
                    state, value = await asyncio.wait_for(self._guarded_candidate(), timeout)
            except asyncio.TimeoutError:
                self._on_timeout()
                return
            except asyncio.CancelledError:
                # The loop is closing, or the caller was cancelled.
                self._settle("cancelled")
                return
            self._candidate_done(state, value, time.perf_counter() - started, inline=False)
        except BaseException as exc:
            self._settle("internal_errors", error=exc, stage="candidate")
        finally:
            self._end_candidate()

    async def _guarded_candidate(self) -> tuple[str, Any]:
        # On Python 3.10, wait_for runs this coroutine as a separate task, and a
        # task re-raises KeyboardInterrupt and SystemExit out of the event loop,
        # into the caller. Catching them here keeps them the candidate's outcome.
        # NOTE: on Python 3.10, asyncio.run() has no SIGINT handler, so a real
        # Ctrl-C that lands while this runs on the main thread is recorded here
        # as the candidate's exception instead of stopping the program.
        try:
            value = await self.candidate(*self.args, **self.kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return _RAISED, exc
        return _RETURNED, value

    def _compute_key(self) -> None:
        if self.key is None and self.key_from_args is not None:
            try:
                self.key = self.key_from_args(self.args, self.kwargs)
            except Exception:
                self.key = None

    def _candidate_done(self, state: str, value: Any, seconds: float, *, inline: bool) -> None:
        with self._lock:
            if self._settled:
                return
            self._candidate_state = state
            self._candidate_value = value
            self._candidate_ms = seconds * 1000
            ready = self._primary is not None
        if not ready:
            return
        if inline:
            self._finish()
        else:
            self._submit_finish()

    def _on_timeout(self) -> None:
        self._end_if_loop_closed()
        with self._lock:
            self._deadline_passed = True
            if self._settled:
                return
            running = self._candidate_state == _RUNNING
            compare_deadline = self._compare_deadline
        if running:
            self._settle("timeouts")
        elif compare_deadline is not None:
            _call_at(compare_deadline, self, ShadowCall._on_compare_timeout)

    def _on_compare_timeout(self) -> None:
        seconds = max(self.control.config.timeout, MIN_COMPARE_SECONDS)
        error = TimeoutError(f"the comparison did not finish within {seconds:g} s")
        self._settle("compare_errors", error=error, stage="compare")

    def _end_if_loop_closed(self) -> None:
        # A loop closed without cancelling its tasks (run_until_complete, then
        # close) never runs this candidate again, so the task's finally block
        # never releases the slot. Let the task go and end the candidate here.
        task, loop, keep = self._task, self._task_loop, self._task_keep
        if task is None or loop is None or task.done() or not loop.is_closed():
            return
        if keep is not None:
            keep.discard(task)
        self._end_candidate()

    def _end_candidate(self) -> None:
        with self._lock:
            if self._candidate_ended:
                return
            self._candidate_ended = True
            self.args = ()
            self.kwargs = {}
        self._drop_holder()

    def _drop_holder(self) -> None:
        with self._lock:
            self._holders -= 1
            release = self._take_release()
        if release:
            admission.release(self.control.name)

    def _take_release(self) -> bool:
        # Called with the lock held: True exactly once, when the slot can go.
        if self._released or not self._settled or self._holders > 0:
            return False
        self._released = True
        return True

    # Comparison and settling ---------------------------------------------------

    def _submit_finish(self) -> None:
        with self._lock:
            self._holders += 1
        pool.submit(self._finish_job)

    def _finish_job(self) -> None:
        try:
            self._finish()
        finally:
            self._drop_holder()

    def _finish(self) -> None:
        deadline = time.monotonic() + max(self.control.config.timeout, MIN_COMPARE_SECONDS)
        try:
            with self._lock:
                self._compare_deadline = deadline
                arm = self._deadline_passed
            if arm:
                _call_at(deadline, self, ShadowCall._on_compare_timeout)
            self._compare_and_settle()
        except BaseException as exc:
            # BaseException too: compare or an adapter raising SystemExit must not
            # end the worker thread or leave the call without an outcome.
            self._settle("internal_errors", error=exc, stage="compare")

    def _compare_and_settle(self) -> None:
        config = self.control.config
        primary = self._primary
        assert primary is not None
        value = self._candidate_value
        self._candidate_value = None

        try:
            if self._candidate_state == _RAISED:
                self.candidate_error = value
                candidate = snapshot_exception(value)
            else:
                candidate = snapshot(value, config.adapter)
        except BaseException as exc:
            self._settle("compare_errors", error=exc, stage=_snapshot_stage(config.adapter))
            return

        try:
            divergence = self._compare(primary, candidate, value)
        except BaseException as exc:
            self._settle("compare_errors", error=exc, stage="compare")
            return

        self.candidate_record = candidate
        if divergence is None:
            self._settle("matched")
        else:
            self._settle("diverged", divergence=divergence, primary=primary, candidate=candidate)

    def _compare(self, primary: ResponseRecord, candidate: ResponseRecord, value: Any) -> Divergence | None:
        config = self.control.config
        if config.compare is not None and primary.ok and candidate.ok:
            if config.compare(self._primary_value, value):
                return None
            found = diff_records(primary, candidate, config.ignore_paths, config.redactor)
            return found or Divergence(note="compare() returned False")
        if primary == candidate:
            return None
        return diff_records(primary, candidate, config.ignore_paths, config.redactor)

    def _settle(
        self,
        outcome: str,
        *,
        error: BaseException | None = None,
        stage: str | None = None,
        divergence: Divergence | None = None,
        primary: ResponseRecord | None = None,
        candidate: ResponseRecord | None = None,
    ) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
            release = self._take_release()
            self._primary_value = None
        self.outcome = outcome
        self.divergence = divergence
        self.primary_record = self._primary
        self.error = error
        try:
            self.control.counters.settle(outcome)
            self._report(outcome, error, stage, divergence, primary, candidate)
        except Exception:
            # The outcome is counted; only its log entry or event is lost.
            _events.count_failure()
        finally:
            with self._lock:
                callbacks, self._callbacks = self._callbacks, []
                self._done.set()
            for callback in callbacks:
                _run_callback(callback, self)
            tracker.closed()
            if release:
                admission.release(self.control.name)

    def _report(
        self,
        outcome: str,
        error: BaseException | None,
        stage: str | None,
        divergence: Divergence | None,
        primary: ResponseRecord | None,
        candidate: ResponseRecord | None,
    ) -> None:
        name = self.control.name
        redactor = self.control.config.redactor
        key = key_digest(self.key) if self.key is not None else "-"
        timing = {"primary_ms": round(self._primary_ms, 3), "candidate_ms": round(self._candidate_ms, 3)}
        if outcome == "diverged":
            assert divergence is not None and primary is not None and candidate is not None
            entry = DivergenceEntry(
                function=name,
                key=key,
                at=datetime.datetime.now(datetime.timezone.utc),
                divergence=divergence,
                primary=_bounded(primary, redactor),
                candidate=_bounded(candidate, redactor),
                primary_ms=self._primary_ms,
                candidate_ms=self._candidate_ms,
            )
            self.control.log.append(entry)
            _events.emit(
                "warning",
                "shadow.divergence",
                self.context,
                function=name,
                key=key,
                summary=divergence.summary(),
                diff=divergence.to_dict(),
                **timing,
            )
        elif outcome == "matched":
            _events.emit("debug", "shadow.match", self.context, function=name, key=key, **timing)
        elif outcome == "timeouts":
            suppressed = _timeout_warnings.allow(name)
            if suppressed is not None:
                _events.emit(
                    "warning",
                    "shadow.candidate_timeout",
                    self.context,
                    function=name,
                    key=key,
                    timeout_s=self.control.config.timeout,
                    suppressed=suppressed,
                    primary_ms=timing["primary_ms"],
                )
        elif outcome == "cancelled":
            _events.emit("debug", "shadow.cancelled", self.context, function=name, key=key)
        else:
            event = "shadow.compare_failed" if outcome == "compare_errors" else "shadow.internal_error"
            _events.emit(
                "error",
                event,
                self.context,
                function=name,
                key=key,
                stage=stage,
                **error_fields(error, redactor),
                **timing,
            )


def _call_at(deadline: float, call: ShadowCall, method: Callable[..., None], *args: Any) -> None:
    """Call ``method(call, *args)`` on the timer thread at ``deadline``, unless ``call`` is gone by then.

    The timer holds only a weak reference: a call that settled and whose jobs
    ended is freed at once, with its records, instead of at its deadline.
    """
    reference = weakref.ref(call)

    def fire() -> None:
        target = reference()
        if target is not None:
            method(target, *args)

    timer.call_at(deadline, fire)


def _snapshot_stage(adapter: Any) -> str:
    return "adapter" if adapter is not None else "snapshot"


def _run_callback(callback: Callable[[ShadowCall], None], call: ShadowCall) -> None:
    try:
        callback(call)
    except Exception:
        pass


def _isolated(value: Any) -> Any:
    """Deep-copy the primary's value for ``compare``, so the caller's later mutations cannot reach it."""
    try:
        return copy.deepcopy(value)
    except KeyboardInterrupt:
        raise
    except BaseException:
        return value


def error_fields(error: BaseException | None, redactor: Redactor) -> dict[str, Any]:
    """Return the ``error`` and ``traceback`` fields of an error event.

    The exception object is not passed to structlog: renderers such as
    ``structlog.processors.dict_tracebacks`` print the local variables of every
    frame, which hold the call's arguments. The traceback is text without locals,
    and the message is cut to 120 characters and redacted when ``error`` is.
    """
    if error is None:
        return {"error": None}
    fields: dict[str, Any] = {"error": preview(redactor.error(error_text(error)))}
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        fields["traceback"] = "".join(traceback.format_list(frames[-MAX_TRACEBACK_FRAMES:]))
    return fields


def _bounded(record: ResponseRecord, redactor: Redactor) -> ResponseRecord:
    """Return the record as kept in ``shadowfn.log``: values cut to a preview, redacted paths replaced."""
    body = record.body
    if isinstance(body, (str, bytes)):
        shown = preview(redactor.text_excerpt(("body",), body))
    else:
        shown = preview(body, path=("body",), redactor=redactor)
    return ResponseRecord(
        ok=record.ok,
        status=record.status,
        headers={name: preview(value) for name, value in redactor.headers(record.headers).items()},
        body=shown,
        error=preview(redactor.error(record.error)),
    )
