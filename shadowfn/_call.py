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
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _events, _metrics
from ._divergence import Divergence, diff_records
from ._executor import admission, bounded, pool, timer, tracker
from ._log import DivergenceEntry
from ._preview import preview
from ._readiness import key_hash
from ._records import ResponseRecord, error_text, snapshot, snapshot_exception
from ._redact import Redactor
from ._runtime import mark_candidate

if TYPE_CHECKING:
    from ._control import ShadowControl
    from ._noise import NoiseRun

__all__ = ["ShadowCall"]

_RUNNING = "running"
_RETURNED = "returned"
_RAISED = "raised"

_timeout_warnings = _events.RateLimiter()

# The comparison (adapter, compare and diff) gets the candidate's timeout, but at
# least this many seconds: it is a guard against a hung hook, not a latency limit.
MIN_COMPARE_SECONDS = 5.0
# A coroutine candidate is cancelled at its timeout, on its own loop. The timer
# backs that up this much later for a candidate that ignores cancellation, so the
# usual case still settles and frees its slot in one step.
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
        # True until the candidate's function returns or raises, or its run is cut
        # off. While it is True the candidate job may hang, so settling closes the
        # call for drain() without waiting for that job.
        self._candidate_running = True
        # Whether settling left closing the call (for drain()) to the last job that
        # frees the slot, so that drain() never returns while the slot is taken.
        self._close_deferred = False
        self._candidate_ended = False
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
        self.noise: NoiseRun | None = None
        # The counters' generation when this call was counted; see Counters.reset().
        self.generation = control.counters.generation
        # The timer entries of the candidate's and the comparison's deadlines,
        # cancelled once the call is over.
        self._deadline: list[Any] | None = None
        self._compare_entry: list[Any] | None = None

        # The result, readable once ``done()`` is true.
        self.outcome: str | None = None
        self.divergence: Divergence | None = None
        self.primary_record: ResponseRecord | None = None
        self.candidate_record: ResponseRecord | None = None
        self.candidate_error: BaseException | None = None
        self.noisy_paths: tuple[str, ...] = ()
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._callbacks: list[Callable[[ShadowCall], None]] = []

    # Waiting for the outcome ------------------------------------------------

    def done(self) -> bool:
        """Return whether the call has settled into its outcome."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the call settles; False when ``timeout`` seconds pass first."""
        return self._done.wait(bounded(timeout))

    @property
    def primary_ms(self) -> float:
        """Milliseconds the primary ran; 0.0 until it has finished."""
        return self._primary_ms

    @property
    def candidate_ms(self) -> float:
        """Milliseconds the candidate ran; 0.0 until it has finished, and after a timeout."""
        return self._candidate_ms

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
        self._deadline = _call_at(
            time.monotonic() + self.control.config.timeout, self, ShadowCall._on_timeout
        )
        pool.submit(self._run_sync_candidate)

    def start_task(self, loop: asyncio.AbstractEventLoop, keep: set[asyncio.Task[None]]) -> None:
        """Run a coroutine candidate as a task on ``loop``, which must be running in this thread.

        ``keep`` holds a strong reference until the task ends. The task copies the
        current context when it is created, so the candidate sees the caller's
        context variables and its own changes stay in its copy. The timer thread
        settles the call as a timeout at the deadline even when the candidate
        ignores its cancellation or the loop stops running it.
        """
        task = loop.create_task(self._run_async_candidate())
        keep.add(task)
        task.add_done_callback(keep.discard)
        task.add_done_callback(self._task_ended)
        self._task, self._task_loop = task, loop
        deadline = time.monotonic() + self.control.config.timeout + CANCEL_GRACE_SECONDS
        self._deadline = _call_at(deadline, self, ShadowCall._on_task_deadline)

    def _on_task_deadline(self) -> None:
        task, loop = self._task, self._task_loop
        if task is not None and loop is not None and loop.is_closed() and not task.done():
            # The loop was closed without cancelling its tasks (loop.close() after
            # run_until_complete), so this task can never run again. Its pending
            # slot is freed, so shadowing goes on.
            # NOTE: the task stays referenced, because collecting it would make asyncio
            # report it, and wait_for's inner task, as destroyed while pending.
            self._end_candidate()
        self._on_timeout()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step, such as one created just before
        # the background loop shuts down, never runs the body of
        # _run_async_candidate, so its cleanup happens here instead.
        if not self._candidate_ended:
            self._settle("cancelled")
            self._end_candidate()

    def attach_noise(self, run: NoiseRun) -> None:
        """Hand the primary's record to ``run`` once the primary finishes (before the primary runs)."""
        self.noise = run

    def _hand_to_noise(self) -> None:
        noise = self.noise
        if noise is None:
            return
        try:
            noise.first_done(self._primary)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            # Runs on the caller's path, so nothing but a Ctrl-C may escape.
            _events.emit(
                "error",
                "shadow.internal_error",
                self.context,
                function=self.control.name,
                stage="noise",
                **error_fields(exc, self.control.config.redactor),
            )

    # The primary's side, called from the caller's thread or task -----------

    def primary_returned(self, value: Any, seconds: float) -> None:
        """Snapshot the primary's value; called on the caller's path.

        Raises only KeyboardInterrupt, which may be a real Ctrl-C that landed in
        the caller's thread; the call is abandoned first, so it still settles.
        Every other failure, SystemExit included, is counted and contained.
        """
        try:
            self._primary_returned(value, seconds)
        finally:
            self._hand_to_noise()

    def _primary_returned(self, value: Any, seconds: float) -> None:
        try:
            config = self.control.config
            try:
                # NOTE: snapshot() walks the value in Python on the caller's thread, about
                # 20 ns per JSON byte (2 ms for 100 KB, benchmarks/bench_diff.py). For plain
                # containers, marshal.dumps() here and normalize() on a worker would cost
                # about a tenth of that on this thread.
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
            reraise_interrupt(exc)

    def primary_raised(self, exc: BaseException, seconds: float) -> None:
        """Record the primary's exception; called on the caller's path, raises only KeyboardInterrupt."""
        try:
            self._primary_raised(exc, seconds)
        finally:
            self._hand_to_noise()

    def _primary_raised(self, exc: BaseException, seconds: float) -> None:
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
            reraise_interrupt(error)

    def start_failed(self, error: BaseException) -> None:
        """Settle a call whose candidate could not be started, such as when no thread can start."""
        self._settle("internal_errors", error=error, stage="start")
        self._end_candidate()

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
            self._candidate_returned()
            self._candidate_done(_RAISED, exc, time.perf_counter() - started, inline=True)
            return
        if asyncio.iscoroutine(value):
            # close() runs the coroutine's finally blocks, which may hang like the candidate.
            value.close()
        self._candidate_returned()
        self._candidate_done(_RETURNED, value, time.perf_counter() - started, inline=True)

    async def _run_async_candidate(self) -> None:
        try:
            timeout = self.control.config.timeout
            mark_candidate()
            self._compute_key()
            started = time.perf_counter()
            try:
                state, value = await asyncio.wait_for(self._guarded_candidate(), timeout)
            except asyncio.TimeoutError:
                self._candidate_returned()
                self._on_timeout()
                return
            except asyncio.CancelledError:
                # The loop is closing, or the caller was cancelled.
                self._candidate_returned()
                self._settle("cancelled")
                return
            self._candidate_returned()
            seconds = time.perf_counter() - started
            if seconds >= timeout:
                # A candidate that swallowed its cancellation at the timeout and then
                # returned or raised: wait_for passes that outcome on, but it is late.
                self._on_timeout()
                return
            self._candidate_done(state, value, seconds, inline=False)
        except BaseException as exc:
            self._settle("internal_errors", error=exc, stage="candidate")
        finally:
            self._end_candidate()

    async def _guarded_candidate(self) -> tuple[str, Any]:
        # Before Python 3.12, wait_for runs this coroutine as a separate task, and
        # a task re-raises KeyboardInterrupt and SystemExit out of the event loop,
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
            except BaseException:
                # Off the caller's path, even a key function's SystemExit only
                # costs the key digest in the logs.
                self.key = None

    def _candidate_returned(self) -> None:
        with self._lock:
            self._candidate_running = False

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
        with self._lock:
            self._deadline_passed = True
            if self._settled:
                return
            running = self._candidate_state == _RUNNING
            compare_deadline = self._compare_deadline
        if running:
            self._settle("timeouts")
        elif compare_deadline is not None:
            self._arm_compare_deadline(compare_deadline)

    def _arm_compare_deadline(self, deadline: float) -> None:
        entry = _call_at(deadline, self, ShadowCall._on_compare_timeout)
        with self._lock:
            released = self._released
            if not released:
                self._compare_entry = entry
        if released:
            # The comparison ended and freed the slot while this entry was made.
            timer.cancel(entry)

    def _on_compare_timeout(self) -> None:
        seconds = max(self.control.config.timeout, MIN_COMPARE_SECONDS)
        error = TimeoutError(f"the comparison did not finish within {seconds:g} s")
        # The comparison job is hung and keeps the slot: drain() must not wait for it.
        self._settle("compare_errors", error=error, stage="compare", holder_hung=True)

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
            close = release and self._close_deferred
            if close:
                self._close_deferred = False
        if release:
            self._cancel_deadline()
            admission.release(self.control.name)
        if close:
            tracker.closed()

    def _cancel_deadline(self) -> None:
        # Settled and the candidate ended: the deadlines have nothing left to do, and
        # cancelling them keeps a long timeout from filling the timer's heap.
        with self._lock:
            entries = [entry for entry in (self._deadline, self._compare_entry) if entry is not None]
            self._deadline = self._compare_entry = None
        for entry in entries:
            timer.cancel(entry)

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
        try:
            pool.submit(self._finish_job)
        except BaseException as exc:
            # No worker could start: settle now and give the slot back.
            self._settle("internal_errors", error=exc, stage="compare")
            self._drop_holder()
            if isinstance(exc, KeyboardInterrupt):
                raise

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
                self._arm_compare_deadline(deadline)
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
            found = self._diff(primary, candidate)
            return found or Divergence(note="compare() returned False")
        if primary == candidate:
            return None
        return self._diff(primary, candidate)

    def _diff(self, primary: ResponseRecord, candidate: ResponseRecord) -> Divergence | None:
        config = self.control.config
        return diff_records(
            primary,
            candidate,
            config.ignore_paths,
            tolerance=config.tolerance,
            unordered=config.unordered_paths,
            redactor=config.redactor,
        )

    def _settle(
        self,
        outcome: str,
        *,
        error: BaseException | None = None,
        stage: str | None = None,
        divergence: Divergence | None = None,
        primary: ResponseRecord | None = None,
        candidate: ResponseRecord | None = None,
        holder_hung: bool = False,
    ) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
            release = self._take_release()
            # The jobs still holding the slot are about to end (the candidate has
            # returned and no comparison is hung): close the call only once the last
            # of them frees the slot, so drain() never returns while it is taken.
            # NOTE: a call settled while its candidate still runs (a timeout, a
            # cancelled caller, a failed snapshot of the primary) closes at once, and
            # its slot stays taken until the candidate returns.
            defer_close = not release and not self._candidate_running and not holder_hung
            self._close_deferred = defer_close
            self._primary_value = None
        self.outcome = outcome
        self.divergence = divergence
        self.primary_record = self._primary
        self.error = error
        try:
            # NOTE: a call counted before a counters reset is left out of the counters,
            # but its divergence still reaches shadowfn.log and structlog.
            counted = self.control.counters.settle(outcome, self.generation)
            if counted and self.key is not None and outcome in ("matched", "diverged"):
                self.control.counters.keys.add(key_hash(self.key))
            _metrics.record(
                self.control.name,
                outcome,
                self._primary_ms if self._primary is not None else None,
                self._candidate_ms if self._candidate_state != _RUNNING else None,
            )
            noisy_paths = self.noisy_paths = self._count_for_noise(outcome, divergence)
            self._report(outcome, error, stage, divergence, primary, candidate, noisy_paths)
        except Exception:
            # The outcome is counted; only its log entry or event is lost.
            _events.count_failure()
        finally:
            with self._lock:
                callbacks, self._callbacks = self._callbacks, []
                self._done.set()
            for callback in callbacks:
                _run_callback(callback, self)
            # Free the slot first, so that after drain() every settled call's slot is free.
            if release:
                self._cancel_deadline()
                admission.release(self.control.name)
            if not defer_close:
                tracker.closed()

    def _count_for_noise(self, outcome: str, divergence: Divergence | None) -> tuple[str, ...]:
        """Count a compared call in the noise evidence; return the divergence's noisy paths."""
        noise_tracker = self.control.noise_tracker
        if noise_tracker is None or outcome not in ("matched", "diverged"):
            return ()
        if self.noise is not None:
            self.noise.compare_if_ready()
        return noise_tracker.record_compared(divergence.paths() if divergence is not None else ())

    def _report(
        self,
        outcome: str,
        error: BaseException | None,
        stage: str | None,
        divergence: Divergence | None,
        primary: ResponseRecord | None,
        candidate: ResponseRecord | None,
        noisy_paths: tuple[str, ...] = (),
    ) -> None:
        name = self.control.name
        redactor = self.control.config.redactor
        key = key_digest(self.key) if self.key is not None else "-"
        timing = {"primary_ms": round(self._primary_ms, 3), "candidate_ms": round(self._candidate_ms, 3)}
        if outcome == "diverged":
            assert divergence is not None
            assert primary is not None
            assert candidate is not None
            entry = DivergenceEntry(
                function=name,
                key=key,
                at=datetime.datetime.now(datetime.timezone.utc),
                divergence=divergence,
                primary=_bounded(primary, redactor),
                candidate=_bounded(candidate, redactor),
                primary_ms=self._primary_ms,
                candidate_ms=self._candidate_ms,
                noisy_paths=noisy_paths,
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
                noisy_paths=list(noisy_paths),
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


def _call_at(deadline: float, call: ShadowCall, method: Callable[..., None], *args: Any) -> list[Any]:
    """Call ``method(call, *args)`` on the timer thread at ``deadline``, unless ``call`` is gone by then.

    The timer holds only a weak reference: a call that settled and whose jobs
    ended is freed at once, with its records, instead of at its deadline.
    """
    reference = weakref.ref(call)

    def fire() -> None:
        target = reference()
        if target is not None:
            method(target, *args)

    return timer.call_at(deadline, fire)


def _snapshot_stage(adapter: Any) -> str:
    return "adapter" if adapter is not None else "snapshot"


def reraise_interrupt(exc: BaseException) -> None:
    """Re-raise a KeyboardInterrupt caught on the caller's path: it may be the user's Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        raise exc


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
