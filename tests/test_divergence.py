"""Divergences: what differs between two records, by part and by path."""

from __future__ import annotations

import json
from typing import Any

import pytest

import shadowfn
from shadowfn import BodyDiff, Change, Divergence, HeaderDiff, ResponseRecord, shadow
from shadowfn._divergence import MAX_CHANGES, diff_records
from shadowfn._paths import PathSet


def body(value: Any) -> ResponseRecord:
    return ResponseRecord(body=value)


def changes_of(divergence: Divergence | None) -> list[tuple[str, str]]:
    assert divergence is not None
    assert divergence.body is not None
    return [(change.path, change.kind) for change in divergence.body.changes]


def settle() -> None:
    assert shadowfn.drain(timeout=5)


def test_equal_records_have_no_divergence() -> None:
    record = ResponseRecord(status=200, headers={"etag": "1"}, body={"a": [1, 2]})

    assert diff_records(record, ResponseRecord(status=200, headers={"etag": "1"}, body={"a": [1, 2]})) is None


def test_raising_candidate_diverges_in_ok_and_error() -> None:
    primary = body({"id": 1})
    candidate = ResponseRecord(ok=False, error="KeyError: 'id'")

    divergence = diff_records(primary, candidate)

    assert divergence is not None
    assert divergence.ok == (True, False)
    assert divergence.error == (None, "KeyError: 'id'")
    assert divergence.body is None
    assert divergence.paths() == ["ok", "error"]


def test_status_part() -> None:
    divergence = diff_records(ResponseRecord(status=200), ResponseRecord(status=500))

    assert divergence == Divergence(status=(200, 500))
    assert divergence.paths() == ["status"]


def test_headers_part_holds_names_only() -> None:
    primary = ResponseRecord(headers={"etag": "a", "date": "mon", "x-old": "1"})
    candidate = ResponseRecord(headers={"etag": "b", "date": "mon", "x-new": "secret-token"})

    divergence = diff_records(primary, candidate)

    assert divergence is not None
    assert divergence.headers == HeaderDiff(added=("x-new",), removed=("x-old",), changed=("etag",))
    assert divergence.paths() == ["headers.x-new", "headers.x-old", "headers.etag"]
    assert "secret-token" not in json.dumps(divergence.to_dict())


def test_body_paths_name_the_changed_leaves() -> None:
    primary = body({"user": {"name": "Ada", "age": 36}, "items": [0, 1, 2, 3, 4]})
    candidate = body({"user": {"name": "Ada L.", "age": 36}, "items": [0, 1, 2, 30, 4]})

    assert changes_of(diff_records(primary, candidate)) == [
        ("body.user.name", "changed"),
        ("body.items[3]", "changed"),
    ]


def test_body_change_kinds() -> None:
    primary = body({"kept": 1, "gone": True, "num": 1, "list": [1, 2]})
    candidate = body({"kept": 1, "new": None, "num": "1", "list": [1, 2, 3]})

    divergence = diff_records(primary, candidate)

    assert divergence is not None
    assert divergence.body is not None
    found = {change.path: change for change in divergence.body.changes}
    assert found["body.gone"] == Change("body.gone", "removed", True, None)
    assert found["body.new"] == Change("body.new", "added", None, None)
    assert found["body.num"] == Change("body.num", "type_changed", 1, "1")
    assert found["body.list[2]"] == Change("body.list[2]", "added", None, 3)
    assert divergence.body.total_changes == 4


def test_int_and_float_of_same_value_match() -> None:
    assert diff_records(body({"n": 1}), body({"n": 1.0})) is None


def test_nan_leaves_match_each_other() -> None:
    assert diff_records(body([float("nan"), 1]), body([float("nan"), 2])) is not None
    assert changes_of(diff_records(body([float("nan"), 1]), body([float("nan"), 2]))) == [
        ("body[1]", "changed")
    ]


def test_changes_are_capped_and_counted() -> None:
    primary = body(list(range(500)))
    candidate = body([i + 1 for i in range(500)])

    divergence = diff_records(primary, candidate)

    assert divergence is not None
    assert divergence.body is not None
    assert len(divergence.body.changes) == MAX_CHANGES
    assert divergence.body.total_changes == 500


def test_text_bodies_report_lengths_and_first_difference() -> None:
    divergence = diff_records(body("hello world"), body("hello there!"))

    assert divergence is not None
    assert divergence.body is not None
    assert divergence.body.primary_len == 11
    assert divergence.body.candidate_len == 12
    assert divergence.body.prefix_equal == 6
    assert changes_of(divergence) == [("body", "changed")]


def test_bytes_bodies_report_lengths_and_first_difference() -> None:
    divergence = diff_records(body(b"\x00\x01\x02"), body(b"\x00\x01\x03\x04"))

    assert divergence is not None
    assert divergence.body == BodyDiff(
        changes=divergence.body.changes,
        total_changes=1,
        primary_len=3,
        candidate_len=4,
        prefix_equal=2,
    )


def test_json_text_bodies_are_diffed_by_path() -> None:
    primary = body(json.dumps({"user": {"name": "Ada"}, "n": 1}))
    candidate = body(json.dumps({"user": {"name": "Eve"}, "n": 1}))

    assert changes_of(diff_records(primary, candidate)) == [("body.user.name", "changed")]


def test_equal_json_written_differently_gives_format_changes() -> None:
    value = {"name": "Åland", "ratio": 1e-05, "items": [{"city": "Zürich"}]}
    primary = body(json.dumps(value))
    candidate = body(json.dumps(value, ensure_ascii=False).replace("1e-05", "0.00001"))

    divergence = diff_records(primary, candidate)

    assert divergence is not None
    assert divergence.body is not None
    assert {change.path: change.kind for change in divergence.body.changes} == {
        "body.name": "format",
        "body.ratio": "format",
        "body.items[0].city": "format",
    }
    found = {change.path: change for change in divergence.body.changes}
    assert found["body.name"].primary == '"\\u00c5land"'
    assert found["body.name"].candidate == '"Åland"'
    assert found["body.ratio"].primary == "1e-05"
    assert found["body.ratio"].candidate == "0.00001"


def test_json_bytes_written_differently_give_format_changes() -> None:
    primary = body(json.dumps({"a": "é"}).encode())
    candidate = body(json.dumps({"a": "é"}, ensure_ascii=False).encode())

    assert changes_of(diff_records(primary, candidate)) == [("body.a", "format")]


def test_json_whitespace_difference_is_one_format_change() -> None:
    primary = body(json.dumps({"a": 1, "b": [1, 2]}))
    candidate = body(json.dumps({"a": 1, "b": [1, 2]}, separators=(",", ":")))

    assert changes_of(diff_records(primary, candidate)) == [("body", "format")]


def test_ignore_exact_path() -> None:
    primary = body({"meta": {"generated_at": 1, "version": 1}, "data": 1})
    candidate = body({"meta": {"generated_at": 2, "version": 2}, "data": 1})

    divergence = diff_records(primary, candidate, PathSet(["body.meta.generated_at"]))

    assert changes_of(divergence) == [("body.meta.version", "changed")]


def test_ignore_part_names() -> None:
    primary = ResponseRecord(status=200, headers={"etag": "1", "date": "a"}, body={"a": 1})
    candidate = ResponseRecord(status=201, headers={"etag": "2", "date": "b"}, body={"a": 2})

    assert diff_records(primary, candidate, PathSet(["status", "headers", "body"])) is None
    only_etag = diff_records(primary, candidate, PathSet(["status", "headers.date", "body"]))
    assert only_etag == Divergence(headers=HeaderDiff(changed=("etag",)))


def test_ignore_single_segment_wildcard() -> None:
    primary = body({"a": {"id": 1, "v": 1}, "b": {"id": 1, "v": 1}, "c": {"d": {"id": 1}}})
    candidate = body({"a": {"id": 2, "v": 1}, "b": {"id": 2, "v": 2}, "c": {"d": {"id": 2}}})

    divergence = diff_records(primary, candidate, PathSet(["body.*.id"]))

    assert changes_of(divergence) == [("body.b.v", "changed"), ("body.c.d.id", "changed")]


def test_ignore_any_index_wildcard() -> None:
    primary = body({"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})
    candidate = body({"items": [{"id": 9, "name": "a"}, {"id": 8, "name": "B"}]})

    divergence = diff_records(primary, candidate, PathSet(["body.items[*].id"]))

    assert changes_of(divergence) == [("body.items[1].name", "changed")]


def test_ignore_any_depth_wildcard() -> None:
    primary = body({"updated_at": 1, "a": {"updated_at": 1, "b": [{"updated_at": 1, "x": 1}]}})
    candidate = body({"updated_at": 2, "a": {"updated_at": 2, "b": [{"updated_at": 2, "x": 2}]}})

    divergence = diff_records(primary, candidate, PathSet(["body.**.updated_at"]))

    assert changes_of(divergence) == [("body.a.b[0].x", "changed")]


def test_ignore_covers_added_and_removed_paths() -> None:
    primary = body({"debug": {"trace": 1}, "value": 1})
    candidate = body({"value": 1, "timing": 5})

    assert diff_records(primary, candidate, PathSet(["body.debug", "body.timing"])) is None


def test_ignore_applies_to_format_changes() -> None:
    value = {"name": "Åland", "code": "AX"}
    primary = body(json.dumps(value))
    candidate = body(json.dumps(value, ensure_ascii=False))

    assert diff_records(primary, candidate, PathSet(["body.name"])) is None


def test_same_exception_type_and_message_match() -> None:
    @shadow(lambda amount: (_ for _ in ()).throw(ValueError(f"negative amount {amount}")))
    def charge(amount: int) -> None:
        raise ValueError(f"negative amount {amount}")

    with pytest.raises(ValueError):
        charge(-5)
    settle()

    assert charge.shadow.stats.matched == 1


def test_different_exception_message_diverges() -> None:
    def candidate(amount: int) -> None:
        raise ValueError("amount must be positive")

    @shadow(candidate)
    def charge(amount: int) -> None:
        raise ValueError(f"negative amount {amount}")

    with pytest.raises(ValueError):
        charge(-5)
    settle()

    entries = shadowfn.log.recent()
    assert len(entries) == 1
    assert entries[0].divergence.ok is None
    assert entries[0].divergence.error == (
        "ValueError: negative amount -5",
        "ValueError: amount must be positive",
    )


def test_different_exception_type_diverges() -> None:
    def candidate(amount: int) -> None:
        raise TypeError("negative amount -5")

    @shadow(candidate)
    def charge(amount: int) -> None:
        raise ValueError(f"negative amount {amount}")

    with pytest.raises(ValueError):
        charge(-5)
    settle()

    assert charge.shadow.stats.diverged == 1


def test_compare_true_overrides_unequal_records() -> None:
    @shadow(lambda: 1.0000001, compare=lambda left, right: abs(left - right) < 1e-3)
    def primary() -> float:
        return 1.0

    primary()
    settle()

    assert primary.shadow.stats.matched == 1


def test_compare_false_overrides_equal_records() -> None:
    @shadow(lambda: [3, 1], compare=lambda left, right: left is right)
    def primary() -> list[int]:
        return [3, 1]

    primary()
    settle()

    entries = shadowfn.log.recent()
    assert primary.shadow.stats.diverged == 1
    assert entries[0].divergence.summary() == "compare() returned False"


def test_compare_gets_original_values() -> None:
    seen: list[tuple[Any, Any]] = []

    def compare(left: Any, right: Any) -> bool:
        seen.append((left, right))
        return True

    @shadow(lambda: {3, 1}, compare=compare)
    def primary() -> set[int]:
        return {1, 3}

    primary()
    settle()

    assert seen == [({1, 3}, {1, 3})]


def test_compare_false_still_describes_the_difference() -> None:
    @shadow(lambda: {"total": 11}, compare=lambda left, right: False)
    def primary() -> dict[str, int]:
        return {"total": 10}

    primary()
    settle()

    entries = shadowfn.log.recent()
    assert changes_of(entries[0].divergence) == [("body.total", "changed")]


def test_ignore_silences_a_decorated_divergence() -> None:
    @shadow(lambda: {"id": 1, "generated_at": "later"}, ignore=("body.generated_at",))
    def primary() -> dict[str, Any]:
        return {"id": 1, "generated_at": "now"}

    primary()
    settle()

    assert primary.shadow.stats.matched == 1
    assert shadowfn.log.recent() == []


def test_summary_is_one_line() -> None:
    divergence = diff_records(
        ResponseRecord(
            status=200, headers={"etag": "a"}, body={"text": "line one\nline two", "n": [1, 2, 3]}
        ),
        ResponseRecord(status=500, headers={"etag": "b"}, body={"text": "other\nlines", "n": [3, 2, 1]}),
    )

    assert divergence is not None
    summary = divergence.summary()
    assert "\n" not in summary
    assert summary.startswith("status 200 -> 500; headers ~etag; body: 3 changes: ")
    assert summary.endswith("(+1 more)")


def test_summary_of_raising_sides() -> None:
    divergence = diff_records(body(1), ResponseRecord(ok=False, error="KeyError: 'x'"))

    assert divergence is not None
    assert divergence.summary() == "only the candidate raised; error None -> \"KeyError: 'x'\""


def test_to_dict_survives_json_dumps() -> None:
    divergence = diff_records(
        ResponseRecord(status=200, headers={"etag": "a"}, body={"blob": b"\xff" * 300, "f": float("inf")}),
        ResponseRecord(status=201, headers={}, body={"blob": b"\x00", "f": float("nan"), "s": {1, 2}}),
    )

    assert divergence is not None
    data = json.loads(json.dumps(divergence.to_dict(), allow_nan=False))
    assert data["status"] == [200, 201]
    assert data["headers"] == {"added": [], "removed": ["etag"], "changed": []}
    assert data["summary"] == divergence.summary()
    assert {change["path"] for change in data["body"]["changes"]} == {"body.blob", "body.f", "body.s"}


def test_logged_entry_to_dict_survives_json_dumps() -> None:
    @shadow(lambda: {"when": "x", "values": [float("nan")]})
    def primary() -> dict[str, Any]:
        return {"when": "y", "values": [1.5]}

    primary()
    settle()

    entry = shadowfn.log.recent()[0]
    data = json.loads(json.dumps(entry.to_dict(), allow_nan=False))
    assert data["function"] == primary.shadow.name
    assert data["divergence"]["summary"] == entry.divergence.summary()


def test_ignore_header_written_in_any_case() -> None:
    primary = ResponseRecord(headers={"etag": "1", "date": "a"})
    candidate = ResponseRecord(headers={"etag": "2", "date": "b"})

    divergence = diff_records(primary, candidate, PathSet(["headers.ETag"]))

    assert divergence == Divergence(headers=HeaderDiff(changed=("date",)))


def test_ignored_value_change_in_json_text_is_not_a_format_change() -> None:
    primary = body(json.dumps({"items": []}))
    candidate = body(json.dumps({"items": [None]}))

    assert changes_of(diff_records(primary, candidate)) == [("body.items[0]", "added")]
    assert diff_records(primary, candidate, PathSet(["body.items[*]"])) is None


def test_format_change_survives_ignored_value_change() -> None:
    primary = body(json.dumps({"generated_at": 1, "name": "Åland"}))
    candidate = body(json.dumps({"generated_at": 2, "name": "Åland"}, ensure_ascii=False))

    divergence = diff_records(primary, candidate, PathSet(["body.generated_at"]))

    assert changes_of(divergence) == [("body.name", "format")]
