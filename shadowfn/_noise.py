"""Noise cancellation: run a pure primary twice and learn which paths differ on their own.

On ``noise_rate`` percent of sampled calls, a function declared ``pure=True``
runs a second time, off the caller's path, on its own copy of the arguments.
Paths where the two primary runs differ (timestamps, random ids, float
summation order) are noise. A divergence path is *noisy* when:

    noise_count(path) >= 1, and
    wilson_lower(divergences(path), compared) <= wilson_upper(noise_count(path), noise_runs)

with 95% Wilson score bounds (z = 1.96). ``compared`` counts the calls that
reached a comparison (matched or diverged), ``noise_runs`` the completed noise
comparisons. In words: the path counts as real only when its divergence rate
between primary and candidate is clearly above the rate at which the primary
disagrees with itself there. A path never seen differing in a noise run is
always real. List indices are folded (``body.items[3].ts`` counts as
``body.items[*].ts``).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._divergence import diff_records
from ._executor import admission, pool, timer, tracker
from ._records import ResponseRecord, snapshot, snapshot_exception
from ._runtime import mark_candidate

if TYPE_CHECKING:
    from ._control import ShadowControl

__all__ = ["NoiseRun", "NoiseStats", "NoiseTracker", "fold_path", "is_noisy", "reset_all", "wilson_bounds"]

Z_95 = 1.96
# How long after its timeout a second run on an event loop is checked for a loop
# closed under it, the same grace that a coroutine candidate gets.
CLOSED_LOOP_GRACE_SECONDS = 0.1

_INDEX = re.compile(r"\[-?\d+\]")


def fold_path(path: str) -> str:
    """Replace list indices in a divergence path with ``[*]``: ``body.items[3].ts`` -> ``body.items[*].ts``."""
    return _INDEX.sub("[*]", path)


def wilson_bounds(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion; (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def is_noisy(divergences: int, compared: int, noise_count: int, noise_runs: int) -> bool:
    """Apply the rule in the module docstring to one path."""
    if noise_count <= 0:
        return False
    divergence_low, _ = wilson_bounds(divergences, compared)
    _, noise_high = wilson_bounds(noise_count, noise_runs)
    return divergence_low <= noise_high


@dataclass(frozen=True)
class NoiseStats:
    """A snapshot of one function's noise evidence.

    Attributes:
        noise_runs: Noise comparisons completed (second primary run versus the first).
        compared: Sampled calls that reached a comparison (matched or diverged).
        noise_counts: Per folded path, the noise runs in which it differed.
        divergence_counts: Per folded path, the diverged calls in which it differed.
        skipped: Noise runs not started (no free slot, arguments not copyable) or not
            compared (the run or its snapshot failed).
    """

    noise_runs: int = 0
    compared: int = 0
    noise_counts: Mapping[str, int] = field(default_factory=dict)
    divergence_counts: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0

    def is_noisy(self, path: str) -> bool:
        """Return whether ``path`` (indices allowed) is noise under the rule of this module."""
        folded = fold_path(path)
        return is_noisy(
            self.divergence_counts.get(folded, 0),
            self.compared,
            self.noise_counts.get(folded, 0),
            self.noise_runs,
        )

    @property
    def noisy_paths(self) -> tuple[str, ...]:
        """The folded paths currently judged noisy, sorted."""
        return tuple(sorted(path for path in self.noise_counts if self.is_noisy(path)))


_TRACKERS: weakref.WeakSet[NoiseTracker] = weakref.WeakSet()


class NoiseTracker:
    """Counts noise and divergence per path for one shadowed function; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_unlocked()
        _TRACKERS.add(self)

    def _reset_unlocked(self) -> None:
        self._noise_runs = 0
        self._compared = 0
        self._skipped = 0
        self._noise_counts: dict[str, int] = {}
        self._divergence_counts: dict[str, int] = {}

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    def record_noise(self, paths: Iterable[str]) -> None:
        """Count one completed noise comparison and the paths where the two primary runs differed."""
        folded = {fold_path(path) for path in paths}
        with self._lock:
            self._noise_runs += 1
            for path in folded:
                self._noise_counts[path] = self._noise_counts.get(path, 0) + 1

    def record_skipped(self) -> None:
        with self._lock:
            self._skipped += 1

    def record_compared(self, paths: Iterable[str]) -> tuple[str, ...]:
        """Count one compared call (``paths`` empty for a match); return which of its paths are noisy."""
        original = list(dict.fromkeys(paths))
        folded = {fold_path(path) for path in original}
        with self._lock:
            self._compared += 1
            for path in folded:
                self._divergence_counts[path] = self._divergence_counts.get(path, 0) + 1
            compared, noise_runs = self._compared, self._noise_runs
            counts = {
                path: (self._divergence_counts[path], self._noise_counts.get(path, 0)) for path in folded
            }
        noisy = []
        for path in original:
            divergences, noise_count = counts[fold_path(path)]
            if is_noisy(divergences, compared, noise_count, noise_runs):
                noisy.append(path)
        return tuple(noisy)

    def snapshot(self) -> NoiseStats:
        with self._lock:
            return NoiseStats(
                noise_runs=self._noise_runs,
                compared=self._compared,
                noise_counts=dict(self._noise_counts),
                divergence_counts=dict(self._divergence_counts),
                skipped=self._skipped,
            )


def reset_all() -> None:
    """Reset the noise evidence of every shadowed function."""
    for noise_tracker in list(_TRACKERS):
        noise_tracker.reset()


class NoiseRun:
    """One second run of a pure primary, compared with the first run off the caller's path.

    It takes one admission slot from its start until its comparison ends, as a
    candidate does, so the worker pool never has more pending jobs than workers.
    """

    def __init__(
        self,
        control: ShadowControl,
        primary: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context,
    ) -> None:
        self.control = control
        self.primary = primary
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self._lock = threading.Lock()
        self._first: ResponseRecord | None = None
        self._first_known = False
        self._second: ResponseRecord | None = None
        self._second_known = False
        self._compare_claimed = False
        self._ended = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: list[Any] | None = None

    # Starting -----------------------------------------------------------------

    def start_in_pool(self) -> None:
        tracker.opened()
        try:
            pool.submit(self._run_sync)
        except BaseException:
            # No worker could start: the caller frees the slot, this closes the run.
            tracker.closed()
            raise

    def start_task(self, loop: asyncio.AbstractEventLoop, keep: set[asyncio.Task[None]]) -> None:
        # The task copies the current context, the caller's, when it is created.
        coroutine = self._run_async()
        try:
            task = loop.create_task(coroutine)
        except BaseException:
            # A task factory may raise: the caller frees the slot.
            coroutine.close()
            raise
        # Opened once the task exists, because the task is what closes it.
        tracker.opened()
        keep.add(task)
        task.add_done_callback(keep.discard)
        self._task, self._loop = task, loop
        reference = weakref.ref(self)

        def check() -> None:
            run = reference()
            if run is not None:
                run._on_deadline()

        deadline = time.monotonic() + self.control.timeout + CLOSED_LOOP_GRACE_SECONDS
        try:
            self._deadline = timer.call_at(deadline, check)
        except Exception:
            # The task is running and frees its own slot: raising here would make
            # the caller free it a second time. Only the closed-loop check is lost.
            pass

    def _on_deadline(self) -> None:
        task, loop = self._task, self._loop
        if task is None or loop is None or task.done() or not loop.is_closed():
            return
        # The loop was closed without cancelling its tasks (loop.close() after
        # run_until_complete), so neither this run nor the caller's coroutine on
        # that loop can finish: give both up, so the slot is freed.
        self._second_done(None)
        self.first_done(None)

    # The second run ---------------------------------------------------------------

    def _run_sync(self) -> None:
        # NOTE: a sync second run has no deadline: if it hangs, it keeps its worker
        # and its admission slot, as a hung sync candidate does.
        try:
            self.context.copy().run(self._invoke_sync)
        except BaseException:
            self._second_done(None)

    def _invoke_sync(self) -> None:
        mark_candidate()
        try:
            value = self.primary(*self.args, **self.kwargs)
        except BaseException as exc:
            self._second_done(snapshot_exception(exc))
            return
        self._second_done(self._snapshot(value))

    async def _run_async(self) -> None:
        try:
            mark_candidate()
            try:
                value = await asyncio.wait_for(self.primary(*self.args, **self.kwargs), self.control.timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._second_done(None)
                return
            except BaseException as exc:
                self._second_done(snapshot_exception(exc))
                return
            self._second_done(self._snapshot(value))
        except BaseException:
            self._second_done(None)

    def _snapshot(self, value: Any) -> ResponseRecord | None:
        try:
            return snapshot(value, self.control.config.adapter)
        except Exception:
            return None

    # Pairing the two runs ----------------------------------------------------------

    def first_done(self, record: ResponseRecord | None) -> None:
        """Hand over the first run's record (None when there is nothing to compare); never raises.

        Called once the shadow call settles, possibly on the caller's thread, so
        the comparison itself goes to the worker pool.
        """
        with self._lock:
            if self._first_known:
                return
            self._first, self._first_known = record, True
            ready = self._second_known
        if ready:
            pool.submit(self._compare)

    def compare_if_ready(self) -> None:
        """Compare now, on this thread, when both runs are known; the settling thread calls it.

        Counting this call's own noise run before its divergence is judged makes
        the first divergences of a function use the evidence they brought.
        """
        with self._lock:
            ready = self._first_known and self._second_known
        if ready:
            self._compare()

    def _second_done(self, record: ResponseRecord | None) -> None:
        with self._lock:
            if self._second_known:
                return
            self._second, self._second_known = record, True
            self.args, self.kwargs = (), {}
            ready = self._first_known
        if ready:
            pool.submit(self._compare)

    def _compare(self) -> None:
        with self._lock:
            if self._compare_claimed:
                return
            self._compare_claimed = True
        noise = self.control.noise_tracker
        try:
            first, second = self._first, self._second
            if noise is None:
                return
            if first is None or second is None:
                noise.record_skipped()
                return
            config = self.control.config
            paths: list[str] = []
            if first != second:
                found = diff_records(
                    first,
                    second,
                    config.ignore_paths,
                    tolerance=config.tolerance,
                    unordered=config.unordered_paths,
                )
                paths = found.paths() if found is not None else []
            noise.record_noise(paths)
        except Exception:
            if noise is not None:
                noise.record_skipped()
        finally:
            self._end()

    def _end(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            deadline, self._deadline = self._deadline, None
        if deadline is not None:
            timer.cancel(deadline)
        admission.release(self.control.name)
        tracker.closed()
