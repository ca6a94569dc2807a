"""Replay under interruption and failing inputs: it stops, and leaves nothing running behind."""

from __future__ import annotations

import asyncio
import io
import signal
import threading
from collections.abc import Iterator

import pycountry
import pytest

import shadowfn
from shadowfn import shadow
from shadowfn._replay_cli import Corpus

COUNTRY_CODES = [country.alpha_2 for country in pycountry.countries]


def _replay_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "shadowfn-replay"]


def _join_replay_threads() -> None:
    # A worker whose start() the interrupt cut short may still be starting; it exits at once.
    for thread in _replay_threads():
        if thread.is_alive():
            thread.join(timeout=10)


def test_keyboard_interrupt_stops_replay_workers() -> None:
    looked_up: list[str] = []

    def name_v2(alpha_2: str) -> str:
        return pycountry.countries.get(alpha_2=alpha_2).name

    @shadow(name_v2, timeout=1.0)
    def name_v1(alpha_2: str) -> str:
        looked_up.append(alpha_2)
        return pycountry.countries.get(alpha_2=alpha_2).name

    def corpus() -> Iterator[tuple[str]]:
        # Twenty passes over the countries, so a replay that ignores Ctrl-C keeps going.
        for position in range(20 * len(COUNTRY_CODES)):
            if position == 50:
                # What Ctrl-C does: SIGINT to the main thread, which waits inside replay().
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            yield (COUNTRY_CODES[position % len(COUNTRY_CODES)],)

    with pytest.raises(KeyboardInterrupt):
        shadowfn.replay(name_v1, corpus(), concurrency=4, progress=False)
    calls_at_interrupt = len(looked_up)
    _join_replay_threads()

    assert calls_at_interrupt < 2 * len(COUNTRY_CODES)
    assert len(looked_up) < 2 * len(COUNTRY_CODES)


def test_failing_input_iterator_stops_replay_workers() -> None:
    def name_v2(alpha_2: str) -> str:
        return pycountry.countries.get(alpha_2=alpha_2).name

    @shadow(name_v2, timeout=1.0)
    def name_v1(alpha_2: str) -> str:
        return pycountry.countries.get(alpha_2=alpha_2).name

    def corpus() -> Iterator[tuple[str]]:
        yield from ((code,) for code in COUNTRY_CODES[:30])
        raise OSError("corpus file truncated")

    with pytest.raises(OSError, match="corpus file truncated"):
        shadowfn.replay(name_v1, corpus(), concurrency=4, progress=False)
    _join_replay_threads()

    assert _replay_threads() == []


@pytest.mark.asyncio
async def test_cancelled_areplay_stops_sync_workers() -> None:
    looked_up: list[str] = []
    fiftieth_input = threading.Event()

    def name_v2(alpha_2: str) -> str:
        return pycountry.countries.get(alpha_2=alpha_2).name

    @shadow(name_v2, timeout=1.0)
    def name_v1(alpha_2: str) -> str:
        looked_up.append(alpha_2)
        return pycountry.countries.get(alpha_2=alpha_2).name

    def corpus() -> Iterator[tuple[str]]:
        for position in range(20 * len(COUNTRY_CODES)):
            if position == 50:
                fiftieth_input.set()
            yield (COUNTRY_CODES[position % len(COUNTRY_CODES)],)

    replaying = asyncio.ensure_future(shadowfn.areplay(name_v1, corpus(), concurrency=4, progress=False))
    assert await asyncio.to_thread(fiftieth_input.wait, 10)
    replaying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await replaying
    _join_replay_threads()

    assert len(looked_up) < 2 * len(COUNTRY_CODES)


def test_deeply_nested_corpus_line_is_a_bad_line() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    stream = io.BytesIO(f'["DE"]\n{deep}\n["FR"]\n'.encode())
    corpus = Corpus(stream, "inputs.jsonl")

    calls = list(corpus.calls())

    assert [call.args for call in calls] == [("DE",), ("FR",)]
    assert corpus.line_numbers == [1, 3]
    assert [number for number, _ in corpus.bad_lines] == [2]
    assert "nested" in corpus.bad_lines[0][1]
