"""Paths into records and the ignore patterns that select them."""

from __future__ import annotations

from typing import Any

import pytest

from shadowfn._paths import Key, PathSet, format_path, parse_pattern


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("body", "user", "name"), "body.user.name"),
        (("body", "items", 3), "body.items[3]"),
        (("body", "items", 3, "id"), "body.items[3].id"),
        (("headers", "etag"), "headers.etag"),
        (("headers", "content-type"), "headers.content-type"),
        (("status",), "status"),
        (("body", "first name"), 'body["first name"]'),
        (("body", "Åland"), 'body["Åland"]'),
        (("body", Key(7)), "body[7]"),
        (("body", Key(None)), "body[None]"),
        (("body", 0, 1), "body[0][1]"),
    ],
)
def test_paths_print_as_divergences_show_them(path: tuple[Any, ...], text: str) -> None:
    assert format_path(path) == text


@pytest.mark.parametrize(
    ("pattern", "path", "matched"),
    [
        ("status", ("status",), True),
        ("headers.etag", ("headers", "etag"), True),
        ("headers.etag", ("headers", "date"), False),
        ("body.user.name", ("body", "user", "name"), True),
        ("body.user.name", ("body", "user"), False),
        ("body.items[3]", ("body", "items", 3), True),
        ("body.items[3]", ("body", "items", 4), False),
        ("body.items[*].id", ("body", "items", 0, "id"), True),
        ("body.items[*].id", ("body", "items", 12, "id"), True),
        ("body.items[*].id", ("body", "items", "key", "id"), False),
        ("body.*.id", ("body", "user", "id"), True),
        ("body.*.id", ("body", "items", 3, "id"), False),
        ("body.*", ("body", "user"), True),
        ("body.*", ("body", "user", "name"), False),
        ("body.**.updated_at", ("body", "updated_at"), True),
        ("body.**.updated_at", ("body", "a", 3, "b", "updated_at"), True),
        ("body.**.updated_at", ("body", "a", "created_at"), False),
        ("**", ("body", "anything", 1), True),
        ('body["first name"]', ("body", "first name"), True),
        ("body[7]", ("body", Key(7)), True),
    ],
)
def test_pattern_matches_whole_path(pattern: str, path: tuple[Any, ...], matched: bool) -> None:
    assert parse_pattern(pattern).matches(path) is matched


def test_printed_path_parses_back_to_matching_pattern() -> None:
    paths: list[tuple[Any, ...]] = [
        ("body", "user", "name"),
        ("body", "items", 3),
        ("headers", "etag"),
        ("body", "first name", 0),
    ]

    for path in paths:
        assert parse_pattern(format_path(path)).matches(path), path


def test_path_set_covers_paths_below_a_pattern() -> None:
    rules = PathSet(["body.meta", "headers.date"])

    assert rules.covers(("body", "meta"))
    assert rules.covers(("body", "meta", "generated_at"))
    assert rules.covers(("headers", "date"))
    assert not rules.covers(("body", "metadata"))
    assert not rules.covers(("body",))
    assert not rules.matches(("body", "meta", "generated_at"))


def test_empty_path_set_is_false() -> None:
    assert not PathSet()
    assert PathSet(["status"])


@pytest.mark.parametrize(
    "pattern",
    ["", "body.", ".body", "body..x", "body[", "body[x]", "body*", "body.*x", 5],
)
def test_invalid_pattern_is_rejected(pattern: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_pattern(pattern)

    assert repr(pattern) in str(info.value)


def test_header_patterns_ignore_case() -> None:
    assert parse_pattern("headers.ETag").matches(("headers", "etag"))
    assert parse_pattern("headers.Content-Type").matches(("headers", "content-type"))
    assert not parse_pattern("body.ETag").matches(("body", "etag"))
