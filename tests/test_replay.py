"""replay(): the API over real inputs, and the ``shadowfn replay`` command end to end."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pycountry
import pytest

import shadowfn
from shadowfn import Call, ShadowConfig, Shadower, shadow
from shadowfn._executor import admission
from shadowfn._replay import normalize_path

COUNTRIES = list(pycountry.countries)
RECORDS = [{"alpha_2": c.alpha_2, "name": c.name} for c in COUNTRIES]
# Countries whose common name differs from their ISO name, such as Bolivia.
RENAMED = {c.alpha_2 for c in COUNTRIES if getattr(c, "common_name", c.name) != c.name}


def names_v2(codes: list[str]) -> dict[str, Any]:
    items = []
    for code in codes:
        country = pycountry.countries.get(alpha_2=code)
        items.append({"code": code, "name": getattr(country, "common_name", country.name)})
    return {"items": items}


@shadow(names_v2, rate=1, timeout=2.0)
def names(codes: list[str]) -> dict[str, Any]:
    items = []
    for code in codes:
        country = pycountry.countries.get(alpha_2=code)
        items.append({"code": code, "name": country.name})
    return {"items": items}


def encode_orjson(record: dict[str, str]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


@shadow(encode_orjson, rate=1)
def encode_legacy(record: dict[str, str]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _batches() -> list[tuple[list[str]]]:
    codes = [c.alpha_2 for c in COUNTRIES]
    return [(codes[i : i + 10],) for i in range(0, len(codes), 10)]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


# The API ----------------------------------------------------------------------------


def test_normalize_path_replaces_indexes() -> None:
    assert normalize_path("body.items[3].price") == "body.items[*].price"
    assert normalize_path("body[0][12]") == "body[*][*]"
    assert normalize_path('body["3"]') == 'body["3"]'
    assert normalize_path("status") == "status"


def test_call_preview_is_bounded() -> None:
    huge = {"names": [c.name for c in COUNTRIES], "text": "x" * 100_000}

    text = str(Call((huge,), {"flag": True}))

    assert len(text) <= 201
    assert text.startswith("({'names': [")


def test_call_rejects_bad_fields() -> None:
    with pytest.raises(TypeError, match="Call args must be a tuple or list"):
        Call("FR")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Call kwargs must be a mapping with str keys"):
        Call((), {1: "FR"})  # type: ignore[dict-item]


def test_replay_groups_by_normalized_path() -> None:
    batches = _batches()

    summary = shadowfn.replay(names, batches, progress=False)

    diverging = [i for i, (codes,) in enumerate(batches) if RENAMED & set(codes)]
    assert RENAMED
    assert summary.total == len(batches)
    assert summary.diverged == len(diverging)
    assert summary.counts == {"diverged": len(diverging), "matched": len(batches) - len(diverging)}
    assert [group.path for group in summary.divergences] == ["body.items[*].name"]
    group = summary.divergences[0]
    assert group.count == len(diverging)
    assert len(group.examples) == min(5, len(diverging))
    assert [e.index for e in group.examples] == sorted(e.index for e in group.examples)
    for example in group.examples:
        assert example.index in diverging
        codes = batches[example.index][0]
        position = int(example.path.split("[")[1].split("]")[0])
        country = pycountry.countries.get(alpha_2=codes[position])
        assert example.primary == country.name
        assert example.candidate == country.common_name
    assert not summary.ok


def test_replay_ignores_rate_and_counts_outcomes() -> None:
    summary = shadowfn.replay(encode_legacy, [(r,) for r in RECORDS], progress=False)
    assert shadowfn.drain(timeout=5)

    non_ascii = [r for r in RECORDS if not r["name"].isascii()]
    assert summary.total == len(RECORDS)
    assert summary.diverged == len(non_ascii)
    assert summary.counts["matched"] == len(RECORDS) - len(non_ascii)
    stats = encode_legacy.shadow.stats  # type: ignore[attr-defined]
    assert stats.sampled == len(RECORDS)
    assert stats.diverged == len(non_ascii)
    assert len(shadowfn.log.recent(n=1000, function=encode_legacy.shadow.name)) == len(non_ascii)  # type: ignore[attr-defined]


def test_replay_ignores_kill_switch() -> None:
    shadowfn.disable()

    summary = shadowfn.replay(encode_legacy, [(r,) for r in RECORDS[:20]], progress=False)

    assert summary.total == 20
    assert "unsampled" not in summary.counts


def test_replay_accepts_input_forms() -> None:
    record = RECORDS[0]
    inputs: list[Any] = [(record,), {"record": record}, Call((record,)), Call((), {"record": record})]

    summary = shadowfn.replay(encode_legacy, inputs, progress=False)

    assert summary.total == 4
    assert summary.counts == {"matched": 4}


def test_replay_reads_generator_lazily() -> None:
    produced: list[int] = []

    def inputs() -> Iterator[tuple[dict[str, str]]]:
        for index, record in enumerate(RECORDS[:30]):
            produced.append(index)
            yield (record,)

    summary = shadowfn.replay(encode_legacy, inputs(), concurrency=2, progress=False)

    assert summary.total == 30
    assert produced == list(range(30))


def test_replay_shadower_target() -> None:
    shadower = Shadower(names.__wrapped__, names_v2, ShadowConfig(rate=0.5), name="names.shadower")  # type: ignore[attr-defined]

    summary = shadowfn.replay(shadower, _batches(), progress=False)

    assert summary.function == "names.shadower"
    assert summary.total == len(_batches())
    assert summary.diverged > 0
    assert shadowfn.stats()["names.shadower"].sampled == summary.total


def test_replay_bounds_concurrency() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def primary(record: dict[str, str]) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return encode_orjson(record)

    shadower = Shadower(primary, encode_orjson)

    summary = shadowfn.replay(shadower, [(r,) for r in RECORDS[:40]], concurrency=3, progress=False)

    assert summary.counts == {"matched": 40}
    assert 1 <= peak <= 3


def test_replay_reports_slowest_inputs() -> None:
    def primary(code: str) -> str:
        if code == "NZ":
            time.sleep(0.1)
        return code

    def candidate(code: str) -> str:
        if code == "PE":
            time.sleep(0.1)
        return code

    codes = [c.alpha_2 for c in COUNTRIES[:60]] + ["NZ", "PE"]

    summary = shadowfn.replay(Shadower(primary, candidate), [(code,) for code in codes], progress=False)

    assert summary.slowest_primary[0].index == codes.index("NZ")
    assert summary.slowest_primary[0].ms >= 90
    assert summary.slowest_candidate[0].index == codes.index("PE")
    assert summary.slowest_candidate[0].ms >= 90
    assert len(summary.slowest_primary) == 5
    assert summary.slowest_primary[0].input == "('NZ')"


def test_replay_primary_errors_are_compared() -> None:
    def strict_lookup(code: str) -> str:
        return str(pycountry.countries.lookup(code).alpha_3)

    def loose_lookup(code: str) -> str:
        country = pycountry.countries.get(alpha_2=code)
        return country.alpha_3 if country is not None else "???"

    summary = shadowfn.replay(Shadower(strict_lookup, loose_lookup), [("FR",), ("XX",)], progress=False)

    assert summary.primary_errors == 1
    assert summary.diverged == 1
    assert [g.path for g in summary.divergences] == ["error", "ok"]


def test_replay_survives_failing_hooks() -> None:
    def candidate(code: str) -> dict[str, str]:
        if code == "DE":
            raise RuntimeError("candidate bug")
        return {"code": code}

    def compare(primary: Any, candidate: Any) -> bool:
        if primary["code"] == "FR":
            raise ValueError("comparator bug")
        return bool(primary == candidate)

    shadower = Shadower(lambda code: {"code": code}, candidate, ShadowConfig(compare=compare))

    summary = shadowfn.replay(shadower, [("DE",), ("FR",), ("IT",)], progress=False)

    assert summary.counts == {"compare_errors": 1, "diverged": 1, "matched": 1}
    assert [g.path for g in summary.divergences] == ["error", "ok"]
    assert summary.primary_errors == 0


def test_replay_hung_candidate_times_out(release: threading.Event) -> None:
    def hang(code: str) -> str:
        if code == "CH":
            release.wait(10)
        return code

    shadower = Shadower(str.upper, hang, ShadowConfig(timeout=0.2))

    started = time.monotonic()
    summary = shadowfn.replay(shadower, [("ch",), ("CH",), ("DE",)], progress=False)

    assert time.monotonic() - started < 3
    assert summary.counts == {"diverged": 1, "matched": 1, "timeouts": 1}
    assert summary.ok is False


def test_replay_counts_shed_inputs_as_not_run() -> None:
    release = threading.Event()

    def hang(code: str) -> str:
        release.wait(10)
        return code

    shadower = Shadower(str.upper, hang, ShadowConfig(timeout=0.1))
    shadowfn.configure(max_pending=2)
    try:
        summary = shadowfn.replay(shadower, [(c,) for c in "abcdef"], concurrency=2, progress=False)
    finally:
        release.set()
        shadowfn.configure(max_pending=32)
        _wait_for_idle_workers()

    assert summary.total == 6
    assert summary.counts == {"not_run": 4, "timeouts": 2}
    assert not summary.all_matched


def _wait_for_idle_workers() -> None:
    # Timed-out sync candidates hold their pending slots until they return.
    deadline = time.monotonic() + 5
    while admission.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.pending == 0


def test_replay_async_target() -> None:
    async def alookup(code: str) -> str:
        await asyncio.sleep(0)
        return str(pycountry.countries.get(alpha_2=code).name)

    async def alookup_v2(code: str) -> str:
        await asyncio.sleep(0)
        country = pycountry.countries.get(alpha_2=code)
        return str(getattr(country, "common_name", country.name))

    codes = [c.alpha_2 for c in COUNTRIES]
    shadower = Shadower(alookup, alookup_v2)

    summary = shadowfn.replay(shadower, [(code,) for code in codes], concurrency=4, progress=False)

    assert summary.total == len(codes)
    assert summary.diverged == len(RENAMED)
    assert [g.path for g in summary.divergences] == ["body"]


@pytest.mark.asyncio
async def test_areplay_inside_loop() -> None:
    async def upper(code: str) -> str:
        return code.upper()

    shadower = Shadower(upper, upper)

    with pytest.raises(RuntimeError, match="areplay"):
        shadowfn.replay(shadower, [("fr",)], progress=False)
    summary = await shadowfn.areplay(shadower, [("fr",), ("de",)], progress=False)
    sync_summary = await shadowfn.areplay(encode_legacy, [(RECORDS[0],)], progress=False)

    assert summary.counts == {"matched": 2}
    assert sync_summary.counts == {"matched": 1}


@pytest.mark.parametrize(
    ("target", "inputs", "keywords", "error", "message"),
    [
        (json.dumps, [], {}, TypeError, "target must be a function decorated with @shadow"),
        (encode_legacy, 5, {}, TypeError, "inputs must be an iterable"),
        (encode_legacy, [(RECORDS[0],), 7], {}, TypeError, r"inputs\[1\] must be a tuple"),
        (encode_legacy, [], {"concurrency": 0}, ValueError, "concurrency must be a positive int"),
        (encode_legacy, [], {"concurrency": 1000}, ValueError, "concurrency must be at most 32"),
    ],
)
def test_replay_rejects_bad_arguments(
    target: Any, inputs: Any, keywords: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        shadowfn.replay(target, inputs, progress=False, **keywords)


def test_replay_progress_only_on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    shadowfn.replay(encode_legacy, [(r,) for r in RECORDS[:10]])
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shadowfn.replay(encode_legacy, [(r,) for r in RECORDS[:10]])
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    shadowfn.replay(encode_legacy, [(r,) for r in RECORDS[:10]], progress=False)

    assert pipe.getvalue() == ""
    assert "10/10" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    assert quiet.getvalue() == ""


def test_summary_to_dict_is_json() -> None:
    summary = shadowfn.replay(names, _batches()[:5], progress=False)

    document = json.loads(json.dumps(summary.to_dict()))

    assert document["total"] == 5
    assert document["function"] == names.shadow.name  # type: ignore[attr-defined]


# The command line ----------------------------------------------------------------------

MODULE = textwrap.dedent(
    """
    import json
    import threading

    import orjson

    from shadowfn import Shadower, ShadowConfig, shadow


    def encode_orjson(record):
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


    @shadow(encode_orjson, rate=1)
    def encode_ascii(record):
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


    @shadow(encode_orjson, rate=1)
    def encode_utf8(record):
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


    def hang(record):
        threading.Event().wait(5)
        return encode_orjson(record)


    slow = Shadower(encode_utf8.__wrapped__, hang, ShadowConfig(timeout=0.2))


    def plain(record):
        return record


    async def aencode_orjson(record):
        return encode_orjson(record)


    @shadow(aencode_orjson, rate=1)
    async def aencode_ascii(record):
        return encode_ascii.__wrapped__(record)
    """
)


def _write_corpus(path: Path) -> dict[str, int]:
    """Write country records as JSONL with malformed lines; return the line numbers of interest."""
    lines = []
    where: dict[str, int] = {}
    for country in COUNTRIES[:60]:
        record = {"alpha_2": country.alpha_2, "name": country.name}
        shape = len(lines) % 3
        if shape == 0:
            lines.append(json.dumps([record], ensure_ascii=False))
        elif shape == 1:
            lines.append(json.dumps({"record": record}, ensure_ascii=False))
        else:
            lines.append(json.dumps({"args": [record], "kwargs": {}}, ensure_ascii=False))
        where.setdefault(country.alpha_2, len(lines))
        if len(lines) == 2:
            lines.append('[{"alpha_2": "FR", ')
            where["truncated"] = len(lines)
        if len(lines) == 7:
            lines.append("42")
            where["number"] = len(lines)
        if len(lines) == 11:
            lines.append("")
        if len(lines) == 20:
            lines.append('{"args": {"record": 1}}')
            where["args_object"] = len(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with path.open("ab") as out:
        out.write(b'["\xff\xfe"]\n')
    where["bad_utf8"] = len(lines) + 1
    return where


def _run_cli(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowfn", "replay", *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    (tmp_path / "codecmod.py").write_text(MODULE, encoding="utf-8")
    where = _write_corpus(tmp_path / "countries.jsonl")
    return tmp_path, where


def test_cli_divergence_exits_one(project: tuple[Path, dict[str, int]]) -> None:
    directory, where = project

    result = _run_cli(directory, "codecmod:encode_ascii", "countries.jsonl")

    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "replayed 60 inputs" in out
    assert f"line {where['AX']}: body.name format" in out
    assert f"line {where['truncated']}: invalid JSON: Expecting property name" in out
    assert "double quotes at column 20" in out
    assert f"line {where['number']}: expected a JSON array" in out
    assert f'line {where["args_object"]}: "args" must be a JSON array' in out
    assert f"line {where['bad_utf8']}: invalid UTF-8" in out
    assert "skipped 4 bad lines" in out
    assert "result: FAIL" in out
    assert "shadow.divergence" not in out


def test_cli_match_exits_zero(project: tuple[Path, dict[str, int]]) -> None:
    directory, _ = project

    result = _run_cli(directory, "codecmod:encode_utf8", "countries.jsonl", "--no-progress")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "outcomes: matched 60" in result.stdout
    assert "result: OK, 0 of 60 inputs diverged" in result.stdout


def test_cli_async_target(project: tuple[Path, dict[str, int]]) -> None:
    directory, where = project

    result = _run_cli(directory, "codecmod:aencode_ascii", "countries.jsonl", "--concurrency", "4")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "replayed 60 inputs" in result.stdout
    assert f"line {where['AX']}: body.name format" in result.stdout


def test_cli_json_output(project: tuple[Path, dict[str, int]]) -> None:
    directory, where = project

    result = _run_cli(directory, "codecmod:encode_ascii", "countries.jsonl", "--json")

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["total"] == 60
    assert [group["path"] for group in document["divergences"]] == ["body.name"]
    assert {bad["line"] for bad in document["bad_lines"]} == {
        where["truncated"],
        where["number"],
        where["args_object"],
        where["bad_utf8"],
    }
    first = document["divergences"][0]["examples"][0]
    assert document["lines"][first["index"]] == where["AX"]


def test_cli_strict_fails_on_timeouts(project: tuple[Path, dict[str, int]]) -> None:
    directory, _ = project
    corpus = directory / "three.jsonl"
    corpus.write_text('[{"alpha_2": "FR"}]\n', encoding="utf-8")

    lenient = _run_cli(directory, "codecmod:slow", "three.jsonl")
    strict = _run_cli(directory, "codecmod:slow", "three.jsonl", "--strict")

    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "timeouts 1" in lenient.stdout
    assert "result: OK" in lenient.stdout
    assert strict.returncode == 1
    assert "result: FAIL" in strict.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("nosuchmodule:encode", "countries.jsonl"), "cannot import module 'nosuchmodule'"),
        (("codecmod:missing", "countries.jsonl"), "has no attribute 'missing'"),
        (("codecmod", "countries.jsonl"), "target must be MODULE:FUNCTION"),
        (("codecmod:plain", "countries.jsonl"), "target must be a function decorated with @shadow"),
        (("codecmod:encode_utf8", "absent.jsonl"), "cannot open inputs file 'absent.jsonl'"),
        (("codecmod:encode_utf8", "countries.jsonl", "--concurrency", "0"), "concurrency must be"),
    ],
)
def test_cli_usage_errors_exit_two(
    project: tuple[Path, dict[str, int]], arguments: tuple[str, ...], message: str
) -> None:
    directory, _ = project

    result = _run_cli(directory, *arguments)

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_cli_empty_corpus_exits_two(project: tuple[Path, dict[str, int]]) -> None:
    directory, _ = project
    (directory / "empty.jsonl").write_text("not json\n\n", encoding="utf-8")

    result = _run_cli(directory, "codecmod:encode_utf8", "empty.jsonl")

    assert result.returncode == 2
    assert "has no valid inputs" in result.stderr
    assert "line 1: invalid JSON" in result.stdout
    assert "result: NO INPUT" in result.stdout


def test_cli_reads_standard_input(project: tuple[Path, dict[str, int]]) -> None:
    directory, _ = project

    result = subprocess.run(
        [sys.executable, "-m", "shadowfn", "replay", "codecmod:encode_ascii", "-"],
        cwd=directory,
        input='[{"name": "Réunion"}]\n[{"name": "Chile"}]\n',
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "line 1: body.name format" in result.stdout
