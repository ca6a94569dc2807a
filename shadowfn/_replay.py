"""Offline replay: run a corpus of inputs through both sides and summarize the divergences."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import re
import reprlib
import sys
import threading
import time
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import Any, TextIO

from ._control import ShadowControl
from ._decorator import _describe
from ._divergence import Divergence
from ._executor import admission
from ._shadower import Shadower, ShadowOutcome

__all__ = [
    "Call",
    "DivergenceGroup",
    "ReplayExample",
    "ReplaySummary",
    "ReplayTiming",
    "areplay",
    "normalize_path",
    "replay",
]

DEFAULT_CONCURRENCY = 8
MAX_EXAMPLES = 5
MAX_SLOWEST = 5
_INPUT_PREVIEW = 200
_INDEX = re.compile(r"\[\d+\]")


@dataclasses.dataclass(frozen=True)
class Call:
    """The arguments of one call: ``function(*args, **kwargs)``.

    Raises:
        TypeError: ``args`` is not a tuple or list, or ``kwargs`` is not a mapping
            with string keys.
    """

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.args, (tuple, list)):
            raise TypeError(f"Call args must be a tuple or list, got {_describe(self.args)}")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise TypeError(f"Call kwargs must be a mapping with str keys, got {_describe(self.kwargs)}")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def __str__(self) -> str:
        parts = [_short_repr(value) for value in self.args]
        parts.extend(f"{name}={_short_repr(value)}" for name, value in self.kwargs.items())
        text = "(" + ", ".join(parts) + ")"
        if len(text) > _INPUT_PREVIEW:
            text = text[:_INPUT_PREVIEW] + "…"
        return text


# reprlib bounds the work as well as the text, so a large input costs little to preview.
_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 8
_REPR.maxstring = _REPR.maxother = 80


def _short_repr(value: Any) -> str:
    try:
        return _REPR.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def as_call(item: Any, index: int) -> Call:
    """Turn one replay input into a Call: a tuple of positional arguments, a dict of keyword arguments or a Call."""
    if isinstance(item, Call):
        return item
    if isinstance(item, tuple):
        return Call(item)
    if isinstance(item, dict):
        return Call((), item)
    raise TypeError(
        f"inputs[{index}] must be a tuple of positional arguments, a dict of keyword arguments "
        f"or a shadowfn.Call, got {_describe(item)}"
    )


def normalize_path(path: str) -> str:
    """Replace list indexes with ``[*]``: ``body.items[3].price`` becomes ``body.items[*].price``."""
    return _INDEX.sub("[*]", path)


@dataclasses.dataclass(frozen=True)
class ReplayExample:
    """One input that diverged at a path: its position in the inputs, a preview of it, and both values."""

    index: int
    input: str
    path: str
    kind: str
    primary: Any
    candidate: Any

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DivergenceGroup:
    """The inputs that diverged at one normalized path, with up to five examples."""

    path: str
    count: int
    examples: tuple[ReplayExample, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "count": self.count, "examples": [e.to_dict() for e in self.examples]}


@dataclasses.dataclass(frozen=True)
class ReplayTiming:
    """How long one side took on one input, in milliseconds."""

    index: int
    input: str
    ms: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReplaySummary:
    """The result of one replay: outcome counts, divergence groups and timings.

    Attributes:
        function: The name of the replayed function.
        total: The number of inputs run.
        counts: Inputs per outcome (``matched``, ``diverged``, ``timeouts``, ...),
            only outcomes that occurred.
        divergences: Groups of diverging inputs by normalized path, the most
            frequent first. One input counts once in every group it reaches.
        diverged: The number of inputs that diverged.
        primary_errors: The number of inputs on which the primary raised.
        slowest_primary: The slowest inputs on the primary's side, slowest first.
        slowest_candidate: The slowest inputs on the candidate's side, slowest
            first; timed-out inputs are not timed and do not appear.
        seconds: Wall-clock duration of the replay.
    """

    function: str
    total: int
    counts: Mapping[str, int]
    divergences: tuple[DivergenceGroup, ...]
    diverged: int
    primary_errors: int
    slowest_primary: tuple[ReplayTiming, ...]
    slowest_candidate: tuple[ReplayTiming, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether no input diverged."""
        return self.diverged == 0

    @property
    def all_matched(self) -> bool:
        """Whether every input ended in a match (no divergence, timeout, error or shed call)."""
        return self.counts.get("matched", 0) == self.total

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-safe data."""
        return {
            "function": self.function,
            "total": self.total,
            "counts": dict(self.counts),
            "diverged": self.diverged,
            "primary_errors": self.primary_errors,
            "divergences": [group.to_dict() for group in self.divergences],
            "slowest_primary": [timing.to_dict() for timing in self.slowest_primary],
            "slowest_candidate": [timing.to_dict() for timing in self.slowest_candidate],
            "seconds": self.seconds,
        }


# Collecting outcomes ------------------------------------------------------------


class _Progress:
    """A one-line progress bar on a terminal, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None, total: int | None) -> None:
        self._stream = stream
        self._total = total
        self._drawn = 0.0

    def update(self, done: int, diverged: int, *, final: bool = False) -> None:
        stream = self._stream
        if stream is None:
            return
        now = time.monotonic()
        if not final and now - self._drawn < 0.1:
            return
        self._drawn = now
        if self._total:
            filled = min(self.WIDTH, self.WIDTH * done // self._total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            line = f"\rreplay [{bar}] {done}/{self._total} diverged {diverged}"
        else:
            line = f"\rreplay {done} inputs, diverged {diverged}"
        try:
            stream.write(line + ("\n" if final else ""))
            stream.flush()
        except (OSError, ValueError):
            self._stream = None


def _progress_stream(progress: bool) -> TextIO | None:
    if not progress:
        return None
    stream = sys.stderr
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError):
        return None


class _Collector:
    """Folds outcomes into a summary; ``add`` is thread-safe."""

    def __init__(self, function: str, progress: _Progress) -> None:
        self.function = function
        self._progress = progress
        self._lock = threading.Lock()
        self._total = 0
        self._counts: dict[str, int] = {}
        self._diverged = 0
        self._primary_errors = 0
        self._groups: dict[str, tuple[int, list[ReplayExample]]] = {}
        self._primary_times: list[tuple[float, int, str]] = []
        self._candidate_times: list[tuple[float, int, str]] = []
        self._started = time.perf_counter()

    def add(self, index: int, call: Call, outcome: ShadowOutcome[Any]) -> None:
        items = _divergence_items(outcome.divergence) if outcome.divergence is not None else []
        with self._lock:
            self._total += 1
            self._counts[outcome.outcome] = self._counts.get(outcome.outcome, 0) + 1
            if not outcome.primary.ok:
                self._primary_errors += 1
            _keep_slowest(self._primary_times, outcome.primary_ms, index, call)
            if outcome.candidate_ms is not None:
                _keep_slowest(self._candidate_times, outcome.candidate_ms, index, call)
            if items:
                self._diverged += 1
                self._group(index, call, items)
            done, diverged = self._total, self._diverged
        self._progress.update(done, diverged)

    def _group(self, index: int, call: Call, items: list[tuple[str, str, Any, Any]]) -> None:
        seen: set[str] = set()
        for path, kind, primary, candidate in items:
            normalized = normalize_path(path)
            count, examples = self._groups.get(normalized, (0, []))
            if normalized not in seen:
                seen.add(normalized)
                count += 1
            if len(examples) < MAX_EXAMPLES and not any(e.index == index for e in examples):
                examples.append(ReplayExample(index, str(call), path, kind, primary, candidate))
            self._groups[normalized] = (count, examples)

    def summary(self) -> ReplaySummary:
        self._progress.update(self._total, self._diverged, final=True)
        groups = [
            DivergenceGroup(path, count, tuple(sorted(examples, key=lambda e: e.index)))
            for path, (count, examples) in self._groups.items()
        ]
        groups.sort(key=lambda group: (-group.count, group.path))
        return ReplaySummary(
            function=self.function,
            total=self._total,
            counts=dict(sorted(self._counts.items())),
            divergences=tuple(groups),
            diverged=self._diverged,
            primary_errors=self._primary_errors,
            slowest_primary=_slowest(self._primary_times),
            slowest_candidate=_slowest(self._candidate_times),
            seconds=time.perf_counter() - self._started,
        )


def _keep_slowest(heap: list[tuple[float, int, str]], ms: float, index: int, call: Call) -> None:
    # The preview is built only for an input that enters the heap.
    if len(heap) < MAX_SLOWEST:
        heapq.heappush(heap, (ms, index, str(call)))
    elif ms > heap[0][0]:
        heapq.heapreplace(heap, (ms, index, str(call)))


def _slowest(heap: list[tuple[float, int, str]]) -> tuple[ReplayTiming, ...]:
    ordered = sorted(heap, key=lambda item: (-item[0], item[1]))
    return tuple(ReplayTiming(index, label, ms) for ms, index, label in ordered)


def _divergence_items(divergence: Divergence) -> list[tuple[str, str, Any, Any]]:
    """List ``(path, kind, primary, candidate)`` for each diverging part of a divergence."""
    items: list[tuple[str, str, Any, Any]] = []
    if divergence.ok is not None:
        items.append(("ok", "changed", divergence.ok[0], divergence.ok[1]))
    if divergence.error is not None:
        items.append(("error", "changed", divergence.error[0], divergence.error[1]))
    if divergence.status is not None:
        items.append(("status", "changed", divergence.status[0], divergence.status[1]))
    if divergence.headers is not None:
        for kind, names in (
            ("added", divergence.headers.added),
            ("removed", divergence.headers.removed),
            ("changed", divergence.headers.changed),
        ):
            items.extend((f"headers.{name}", kind, None, None) for name in names)
    body = divergence.body
    if body is not None:
        items.extend((c.path, c.kind, c.primary, c.candidate) for c in body.changes)
        if not body.changes:
            # A text or bytes body: the lengths and the offset of the first difference.
            items.append(
                (
                    "body",
                    "changed",
                    f"length {body.primary_len}",
                    f"length {body.candidate_len}, first difference at offset {body.prefix_equal}",
                )
            )
    if not items:
        items.append(("(compare)", "changed", None, divergence.note))
    return items


# Running --------------------------------------------------------------------------


def _shadower_for(target: Any) -> Shadower[..., Any]:
    """Return a Shadower that shadows every call of ``target``, under the target's name."""
    if isinstance(target, Shadower):
        return target._for_replay()
    control = getattr(target, "shadow", None)
    primary = getattr(target, "__wrapped__", None)
    if not isinstance(control, ShadowControl) or primary is None:
        raise TypeError(
            f"target must be a function decorated with @shadow or a shadowfn.Shadower, got {_describe(target)}"
        )
    if isinstance(control.candidate, str) or control._method_kind != "function":
        raise TypeError(
            f"cannot replay {control.name}: replay needs a plain function whose candidate is a callable; "
            "for a method, pass shadowfn.Shadower(instance.method, instance.candidate_method, config)"
        )
    return Shadower(primary, control.candidate, control.config, name=control.name)._for_replay()


def _check_concurrency(concurrency: Any, shadower: Shadower[..., Any]) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, got {_describe(concurrency)}")
    bounds = [("shadowfn.configure(max_pending=...)", admission.max_pending)]
    if shadower.config.max_pending is not None:
        bounds.append(("the function's max_pending", shadower.config.max_pending))
    for source, bound in bounds:
        if concurrency > bound:
            raise ValueError(
                f"concurrency must be at most {bound}, the pending bound set by {source}, "
                f"got {concurrency}: calls past the bound would be shed, not compared"
            )
    return concurrency


def _setup(
    target: Any, concurrency: Any, progress: bool, inputs: Any
) -> tuple[Shadower[..., Any], int, _Collector]:
    shadower = _shadower_for(target)
    workers = _check_concurrency(concurrency, shadower)
    try:
        total: int | None = len(inputs)
    except TypeError:
        total = None
    collector = _Collector(shadower.name, _Progress(_progress_stream(progress), total))
    return shadower, workers, collector


def replay(
    target: Any,
    inputs: Iterable[Any],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: bool = True,
) -> ReplaySummary:
    """Run every input through both sides of ``target`` and summarize the outcomes.

    Sampling is off: every input runs the primary and the candidate and is
    compared, with the target's timeout, ignore rules, comparator and adapter.
    The target's rate, its ``enabled`` flag and the process-wide kill switch
    do not apply.
    Outcomes go to the same counters, ``shadowfn.log`` and structlog events as
    live calls of the target. Inputs are read lazily, at most ``concurrency``
    at a time, so a generator over a large corpus is fine.

    NOTE: a sync candidate that outlives its timeout keeps its worker and its
    pending slot until it returns. Once hung candidates fill the pending bound,
    later inputs are shed and counted as ``not_run``, not compared.

    Args:
        target: A function decorated with ``@shadow``, or a :class:`Shadower`.
        inputs: Each item is a tuple of positional arguments, a dict of keyword
            arguments, or a :class:`Call`.
        concurrency: How many inputs run at once: threads for a sync target,
            tasks on a new event loop for a coroutine target. At most the pending
            bound (``shadowfn.configure(max_pending=...)``, 32 by default).
        progress: Draw a progress bar on stderr when stderr is a terminal.

    Returns:
        A :class:`ReplaySummary`.

    Raises:
        TypeError: ``target`` is neither a decorated function nor a Shadower,
            ``inputs`` is not iterable, or an input is not a tuple, dict or Call
            (inputs before it have run by then).
        ValueError: ``concurrency`` is not a positive int within the pending bound.
        RuntimeError: ``target`` is a coroutine function and an event loop is
            running in this thread; use ``await shadowfn.areplay(...)``.
    """
    shadower, workers, collector = _setup(target, concurrency, progress, inputs)
    if shadower.is_async:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_run_async(shadower, inputs, workers, collector))
        else:
            raise RuntimeError(
                f"replay() of the coroutine function {shadower.name} cannot run inside a running event "
                "loop; use 'await shadowfn.areplay(...)'"
            )
    else:
        _run_threads(shadower, _numbered(inputs), workers, collector)

    return collector.summary()


async def areplay(
    target: Any,
    inputs: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: bool = True,
) -> ReplaySummary:
    """Replay like :func:`replay`, awaiting a coroutine target on the running event loop.

    ``inputs`` may also be an async iterable. A sync target runs on worker
    threads, so the loop is not blocked.
    """
    shadower, workers, collector = _setup(target, concurrency, progress, inputs)
    if shadower.is_async:
        await _run_async(shadower, inputs, workers, collector)
    else:
        if isinstance(inputs, AsyncIterable):
            inputs = [item async for item in inputs]
        stop = threading.Event()
        try:
            await asyncio.to_thread(_run_threads, shadower, _numbered(inputs), workers, collector, stop)
        except BaseException:
            # Cancelling the await does not stop the thread, so tell its workers.
            stop.set()
            raise

    return collector.summary()


def _numbered(inputs: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    try:
        iterator = iter(inputs)
    except TypeError:
        raise TypeError(
            f"inputs must be an iterable of argument tuples, keyword dicts or Calls, got {_describe(inputs)}"
        ) from None
    return enumerate(iterator)


def _run_threads(
    shadower: Shadower[..., Any],
    numbered: Iterator[tuple[int, Any]],
    workers: int,
    collector: _Collector,
    stop: threading.Event | None = None,
) -> None:
    """Run the inputs on ``workers`` threads; once ``stop`` is set, no worker takes another input."""
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if failures or (stop is not None and stop.is_set()):
                    return
                try:
                    index, item = next(numbered)
                    call = as_call(item, index)
                except StopIteration:
                    return
                except BaseException as exc:
                    failures.append(exc)
                    return
            try:
                outcome = shadower.call(*call.args, **call.kwargs)
            except BaseException as exc:
                with lock:
                    failures.append(exc)
                return
            collector.add(index, call, outcome)

    threads = [threading.Thread(target=work, name="shadowfn-replay", daemon=True) for _ in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException as exc:
        # Ctrl-C reaches the main thread, not the workers: stop them from taking more
        # inputs, then wait for the calls they are running (another Ctrl-C ends the wait).
        with lock:
            failures.append(exc)
        for thread in threads:
            if thread.is_alive():
                thread.join()
        raise
    if failures:
        raise failures[0]


async def _run_async(
    shadower: Shadower[..., Any],
    inputs: Iterable[Any] | AsyncIterable[Any],
    workers: int,
    collector: _Collector,
) -> None:
    if isinstance(inputs, AsyncIterable):
        source: Any = inputs.__aiter__()
    else:
        source = _numbered(inputs)
    position = 0
    lock = asyncio.Lock()

    async def next_call() -> tuple[int, Call] | None:
        nonlocal position
        async with lock:
            if isinstance(source, Iterator):
                try:
                    index, item = next(source)
                except StopIteration:
                    return None
            else:
                try:
                    item = await source.__anext__()
                except StopAsyncIteration:
                    return None
                index = position
                position += 1
            return index, as_call(item, index)

    async def work() -> None:
        while True:
            numbered = await next_call()
            if numbered is None:
                return
            index, call = numbered
            outcome = await shadower.acall(*call.args, **call.kwargs)
            collector.add(index, call, outcome)

    tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
