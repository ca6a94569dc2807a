"""Secrets in arguments, headers and redacted body paths never reach the logs or shadowfn.log."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

import shadowfn
from shadowfn import shadow

# Made at run time, so no source line that a traceback prints can contain it.
SECRET = "sk-" + secrets.token_hex(12)
OTHER_SECRET = "pw-" + secrets.token_hex(12)


@dataclass
class Response:
    """An HTTP-style response, read by shadowfn's built-in adapter."""

    status_code: int
    headers: dict[str, str]
    content: bytes
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Render every shadowfn event as JSON into a string, tracebacks with their locals included."""
    saved = structlog.get_config()
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(default=repr),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    yield output
    structlog.configure(**saved)


def logged_text(output: io.StringIO) -> str:
    """Return the structlog output and every form of every shadowfn.log entry, as one string."""
    assert shadowfn.drain(timeout=10)
    parts = [output.getvalue()]
    for entry in shadowfn.log.recent(1000):
        parts += [
            repr(entry),
            json.dumps(entry.to_dict()),
            repr(entry.primary),
            repr(entry.candidate),
            repr(entry.divergence),
            str(entry.divergence.summary()),
        ]
    return "\n".join(parts)


def events(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


# Secrets in arguments --------------------------------------------------------------


def test_argument_secret_absent_from_divergence(json_log: io.StringIO) -> None:
    def candidate(user_id: int, api_token: str) -> dict[str, Any]:
        return {"user": user_id, "plan": "free"}

    @shadow(candidate, name="args_divergence", rate=50, key="api_token")
    def lookup(user_id: int, api_token: str) -> dict[str, Any]:
        return {"user": user_id, "plan": "pro"}

    for user_id in range(20):
        assert lookup(user_id, SECRET + str(user_id)) == {"user": user_id, "plan": "pro"}

    text = logged_text(json_log)
    assert any(event["event"] == "shadow.divergence" for event in events(json_log))
    assert SECRET not in text


def test_secret_absent_from_error_tracebacks(json_log: io.StringIO) -> None:
    def candidate(user_id: int, api_token: str) -> dict[str, Any]:
        header = f"Bearer {api_token}"
        raise PermissionError(f"rejected a header of {len(header)} characters")

    def compare(primary: Any, candidate_value: Any) -> bool:
        # The failing hook's locals hold both returned values, token included.
        raise ValueError("compare failed")

    def adapter(value: dict[str, Any]) -> shadowfn.ResponseRecord:
        if value["side"] == "candidate":
            raise RuntimeError("adapter failed")
        return shadowfn.ResponseRecord(body=value)

    @shadow(candidate, name="args_raise")
    def lookup(user_id: int, api_token: str) -> dict[str, Any]:
        return {"user": user_id}

    def session(user_id: int) -> dict[str, Any]:
        return {"user": user_id, "token": SECRET, "side": "candidate"}

    @shadow(session, name="hook_compare", compare=compare, redact=("body.token",))
    def compared(user_id: int) -> dict[str, Any]:
        return {"user": user_id, "token": SECRET, "side": "primary"}

    @shadow(session, name="hook_adapter", adapter=adapter, redact=("body.token",))
    def adapted(user_id: int) -> dict[str, Any]:
        return {"user": user_id, "token": SECRET, "side": "primary"}

    assert lookup(1, SECRET) == {"user": 1}
    assert compared(1)["token"] == SECRET
    assert adapted(1)["token"] == SECRET

    text = logged_text(json_log)
    logged = [event["event"] for event in events(json_log)]
    assert logged.count("shadow.compare_failed") == 2
    assert "shadow.divergence" in logged
    assert SECRET not in text
    failed = next(event for event in events(json_log) if event.get("stage") == "compare")
    assert failed["error"] == "ValueError: compare failed"
    assert "in compare" in failed["traceback"]


def test_error_message_secret_hidden_by_redact_error(json_log: io.StringIO) -> None:
    def candidate(api_token: str) -> str:
        raise KeyError(api_token)

    @shadow(candidate, name="error_redacted", redact=("error",))
    def lookup(api_token: str) -> str:
        raise KeyError(api_token[::-1])

    with pytest.raises(KeyError):
        lookup(SECRET)

    text = logged_text(json_log)
    entry = shadowfn.log.recent(1, function="error_redacted")[0]
    assert entry.divergence.error == ("KeyError: <redacted>", "KeyError: <redacted>")
    assert SECRET not in text
    assert SECRET[::-1] not in text


def test_error_message_logged_without_redact_error(json_log: io.StringIO) -> None:
    @shadow(lambda order: None, name="error_shown")
    def lookup(order: str) -> None:
        raise LookupError(f"no order {order}")

    with pytest.raises(LookupError):
        lookup("A-17")

    assert shadowfn.drain(timeout=5)
    entry = shadowfn.log.recent(1, function="error_shown")[0]
    assert entry.divergence.error == ("LookupError: no order A-17", None)


# Secrets in headers ----------------------------------------------------------------


def _response(token: str, cookie: str, etag: str) -> Response:
    return Response(
        status_code=200,
        headers={
            "Authorization": f"Bearer {token}",
            "Cookie": f"session={cookie}",
            "Set-Cookie": f"session={cookie}; HttpOnly",
            "X-Api-Key": token,
            "ETag": etag,
        },
        content=b'{"ok": true}',
    )


def test_header_secrets_absent_by_default_and_by_redact(json_log: io.StringIO) -> None:
    @shadow(
        lambda: _response(OTHER_SECRET, OTHER_SECRET, "v2"), name="headers", redact=("headers.x-api-key",)
    )
    def fetch() -> Response:
        return _response(SECRET, SECRET, "v1")

    fetch()

    text = logged_text(json_log)
    entry = shadowfn.log.recent(1, function="headers")[0]
    assert entry.divergence.headers is not None
    assert set(entry.divergence.headers.changed) == {
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "etag",
    }
    assert entry.primary.headers["authorization"] == "<redacted>"
    assert entry.primary.headers["set-cookie"] == "<redacted>"
    assert entry.primary.headers["x-api-key"] == "<redacted>"
    assert entry.primary.headers["etag"] == "v1"
    assert SECRET not in text
    assert OTHER_SECRET not in text


# Secrets in redacted body paths ----------------------------------------------------


def test_redacted_body_path_still_diverges(json_log: io.StringIO) -> None:
    def candidate(user_id: int) -> dict[str, Any]:
        return {"user": {"id": user_id, "email": OTHER_SECRET}, "session": {"auth": {"token": OTHER_SECRET}}}

    @shadow(candidate, name="body_paths", redact=("body.user.email", "body.**.token"))
    def profile(user_id: int) -> dict[str, Any]:
        return {"user": {"id": user_id, "email": SECRET}, "items": [{"token": SECRET}]}

    profile(5)

    text = logged_text(json_log)
    entry = shadowfn.log.recent(1, function="body_paths")[0]
    changes = {change.path: change for change in entry.divergence.body.changes}  # type: ignore[union-attr]
    assert changes["body.user.email"].kind == "changed"
    assert changes["body.user.email"].primary == "<redacted>"
    assert changes["body.user.email"].candidate == "<redacted>"
    # Added and removed subtrees are redacted inside, too.
    assert changes["body.session"].candidate == {"auth": {"token": "<redacted>"}}
    assert changes["body.items"].primary == [{"token": "<redacted>"}]
    assert entry.primary.body["user"] == {"id": 5, "email": "<redacted>"}
    assert SECRET not in text
    assert OTHER_SECRET not in text


def test_redacted_path_in_json_content(json_log: io.StringIO) -> None:
    def body(token: str, count: int) -> bytes:
        return json.dumps({"count": count, "auth": {"token": token}}).encode()

    def candidate() -> Response:
        return Response(200, {"content-type": "application/json"}, body(OTHER_SECRET, 2))

    @shadow(candidate, name="json_content", redact=("body.auth.token",))
    def fetch() -> Response:
        return Response(200, {"content-type": "application/json"}, body(SECRET, 1))

    fetch()

    text = logged_text(json_log)
    entry = shadowfn.log.recent(1, function="json_content")[0]
    assert entry.divergence.paths() == ["body.count", "body.auth.token"]
    assert SECRET not in text
    assert OTHER_SECRET not in text


@pytest.mark.parametrize(
    ("primary_text", "candidate_text"),
    [
        # Plain text: the excerpt around the first difference contains the secret.
        ("user=1 token={secret} plan=pro", "user=1 token={other} plan=pro"),
        # The same JSON written in another key order: a text-only difference.
        ('{{"token": "{secret}", "n": 1}}', '{{"n": 1, "token": "{secret}"}}'),
    ],
    ids=["plain", "json-key-order"],
)
def test_text_body_excerpts_hidden_by_body_redact(
    json_log: io.StringIO, primary_text: str, candidate_text: str
) -> None:
    candidate_body = candidate_text.format(secret=SECRET, other=OTHER_SECRET)

    @shadow(lambda: candidate_body, name="text_body", redact=("body.token",))
    def render() -> str:
        return primary_text.format(secret=SECRET, other=OTHER_SECRET)

    render()

    text = logged_text(json_log)
    assert len(shadowfn.log.recent(1, function="text_body")) == 1
    assert SECRET not in text
    assert OTHER_SECRET not in text


def test_text_body_excerpt_kept_without_body_redact() -> None:
    @shadow(lambda: "plan=free", name="text_excerpt")
    def render() -> str:
        return "plan=pro"

    render()

    assert shadowfn.drain(timeout=5)
    change = shadowfn.log.recent(1, function="text_excerpt")[0].divergence.body.changes[0]  # type: ignore[union-attr]
    assert (change.primary, change.candidate) == ("plan=pro", "plan=free")


def test_redact_on_shadow_config() -> None:
    config = shadowfn.ShadowConfig(redact=["body.secret"])

    @shadow(lambda: {"secret": OTHER_SECRET}, config=config, name="config_redact")
    def read() -> dict[str, str]:
        return {"secret": SECRET}

    read()

    assert shadowfn.drain(timeout=5)
    entry = shadowfn.log.recent(1, function="config_redact")[0]
    assert config.redact == ("body.secret",)
    assert entry.divergence.paths() == ["body.secret"]
    assert SECRET not in repr(entry.to_dict()) + repr(entry.primary)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (42, TypeError, "redact must be a tuple of path patterns"),
        (("body..email",), ValueError, "redact has an invalid path"),
        (("",), ValueError, "redact has an invalid path"),
    ],
)
def test_invalid_redact_rejected(value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        shadow(lambda: None, redact=value)


def test_header_patterns_ignore_adapter_case() -> None:
    def adapter(value: str) -> shadowfn.ResponseRecord:
        return shadowfn.ResponseRecord(headers={"X-Api-Key": value, "Authorization": value}, body=value)

    @shadow(lambda: OTHER_SECRET, name="adapter_headers", adapter=adapter, redact=("headers.x-api-key",))
    def read() -> str:
        return SECRET

    read()

    assert shadowfn.drain(timeout=5)
    entry = shadowfn.log.recent(1, function="adapter_headers")[0]
    assert {name.lower() for name in entry.primary.headers} == {"x-api-key", "authorization"}
    assert set(entry.primary.headers.values()) == {"<redacted>"}
