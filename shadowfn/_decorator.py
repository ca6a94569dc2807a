"""The ``@shadow`` decorator: sync and async call paths, side by side."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

import wrapt

from ._config import ShadowConfig
from ._control import ShadowControl
from ._keys import KeySpec
from ._records import ResponseRecord
from ._runtime import _IN_CANDIDATE, SWITCH

__all__ = ["shadow"]

F = TypeVar("F", bound=Callable[..., Any])


class _BoundShadowWrapper(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    @property
    def shadow(self) -> ShadowControl:
        control: ShadowControl = self._self_parent._self_control
        return control


class _ShadowWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    __bound_function_wrapper__ = _BoundShadowWrapper

    @property
    def shadow(self) -> ShadowControl:
        control: ShadowControl = self._self_control
        return control


def _sync_wrapper(control: ShadowControl) -> Callable[..., Any]:
    def call_sync(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not (SWITCH.enabled and control._enabled) or control._rate <= 0 or _IN_CANDIDATE.get():
            return wrapped(*args, **kwargs)
        shadow_call = control.begin(instance, args, kwargs)
        if shadow_call is None:
            return wrapped(*args, **kwargs)

        started = time.perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            shadow_call.primary_raised(exc, time.perf_counter() - started)
            raise
        shadow_call.primary_returned(result, time.perf_counter() - started)
        return result

    return call_sync


def _async_wrapper(control: ShadowControl) -> Callable[..., Any]:
    async def call_async(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not (SWITCH.enabled and control._enabled) or control._rate <= 0 or _IN_CANDIDATE.get():
            return await wrapped(*args, **kwargs)
        shadow_call = control.begin(instance, args, kwargs)
        if shadow_call is None:
            return await wrapped(*args, **kwargs)

        started = time.perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            shadow_call.primary_raised(exc, time.perf_counter() - started)
            raise
        shadow_call.primary_returned(result, time.perf_counter() - started)
        return result

    return call_async


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return f"{text[:80]} ({type(value).__name__})"


def _reject_generators(function: Any, parameter: str) -> None:
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        kind = "an async generator" if inspect.isasyncgenfunction(function) else "a generator"
        raise TypeError(
            f"{parameter} must be a function that returns its result, got {kind} function "
            f"{getattr(function, '__qualname__', function)!r}: shadowfn cannot compare lazily produced items; "
            "wrap it in a function that returns a list"
        )


def _unwrap_method(primary: Any) -> tuple[Any, str]:
    if isinstance(primary, classmethod):
        return primary.__func__, "classmethod"
    if isinstance(primary, staticmethod):
        return primary.__func__, "staticmethod"
    return primary, "function"


def _signature_of(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _check_key_names(config: ShadowConfig, signature: inspect.Signature | None, name: str) -> None:
    names = (config.key,) if isinstance(config.key, str) else config.key
    if not isinstance(names, tuple) or signature is None:
        return
    known = list(signature.parameters)
    for parameter in names:
        if parameter not in known:
            raise ValueError(
                f"key names parameter {parameter!r}, which {name} does not have; its parameters are {known}"
            )


@overload
def shadow(
    candidate: Callable[..., Any] | str,
    *,
    rate: float = ...,
    timeout: float = ...,
    key: KeySpec = ...,
    ignore: tuple[str, ...] | list[str] | str = ...,
    compare: Callable[[Any, Any], bool] | None = ...,
    adapter: Callable[[Any], ResponseRecord] | None = ...,
    name: str | None = ...,
    enabled: bool = ...,
    copy_args: bool = ...,
    max_pending: int | None = ...,
    redact: tuple[str, ...] | list[str] | str = ...,
) -> Callable[[F], F]: ...


@overload
def shadow(
    candidate: Callable[..., Any] | str, *, config: ShadowConfig, name: str | None = ..., enabled: bool = ...
) -> Callable[[F], F]: ...


def shadow(
    candidate: Callable[..., Any] | str,
    *,
    rate: float = 100,
    timeout: float = 2.0,
    key: KeySpec = None,
    ignore: Any = (),
    compare: Callable[[Any, Any], bool] | None = None,
    adapter: Callable[[Any], ResponseRecord] | None = None,
    name: str | None = None,
    enabled: bool = True,
    copy_args: bool = True,
    max_pending: int | None = None,
    redact: Any = (),
    config: ShadowConfig | None = None,
) -> Callable[[F], F]:
    """Shadow the decorated function (the primary) with ``candidate``.

    On a sticky ``rate`` percent of keys, the candidate also runs, concurrently,
    on its own deep copy of the arguments. The caller always gets the primary's
    return value or exception, unchanged, without waiting for the candidate.
    Both outcomes become records; a difference becomes a ``Divergence`` that is
    counted, kept in ``shadowfn.log`` and logged as ``shadow.divergence``.

    Args:
        candidate: The new implementation, with the primary's signature, sync or
            async; or the name of another method of the same class, looked up on
            the instance at each call.
        rate: Percent of keys shadowed, in [0, 100]; fractions allowed.
        timeout: Seconds the candidate may run before the call counts as a timeout.
        key: What the sticky key covers: None for all arguments, a parameter name
            or tuple of names, or a function of the arguments.
        ignore: Paths left out of the comparison, such as ``"headers.etag"`` or
            ``"body.items[*].id"``.
        compare: ``(primary_value, candidate_value) -> bool``, the domain's equality.
        adapter: ``(value) -> ResponseRecord``, to turn a return value into a record.
        name: The name in logs and stats; ``module.qualname`` by default.
        enabled: Whether shadowing starts on; ``wrapped.shadow.enabled`` changes it.
        copy_args: Deep-copy the arguments for the candidate on sampled calls.
        max_pending: At most this many of this function's candidates pending at once.
        redact: Paths whose values are replaced by ``"<redacted>"`` in everything
            logged or kept in ``shadowfn.log``, in the ``ignore`` syntax, such as
            ``"body.user.email"`` or ``"body.**.token"``; ``"error"`` hides
            exception messages. The ``authorization``, ``proxy-authorization``,
            ``cookie`` and ``set-cookie`` headers are always redacted.
        config: A ``ShadowConfig`` holding the settings above, instead of keywords.

    Raises:
        TypeError, ValueError: at decoration time, for an invalid setting; the
            message names the parameter, shows the value and says what is accepted.
    """
    if config is None:
        config = ShadowConfig(
            rate=rate,
            timeout=timeout,
            key=key,
            ignore=ignore,
            compare=compare,
            adapter=adapter,
            copy_args=copy_args,
            max_pending=max_pending,
            redact=redact,
        )
    elif not isinstance(config, ShadowConfig):
        raise TypeError(f"config must be a ShadowConfig, got {_describe(config)}")

    if isinstance(candidate, str):
        if not candidate.isidentifier():
            raise ValueError(f"candidate must be a callable or a method name, got {_describe(candidate)}")
    elif not callable(candidate) and not isinstance(candidate, (classmethod, staticmethod)):  # type: ignore[unreachable]
        raise TypeError(f"candidate must be a callable or the name of a method, got {_describe(candidate)}")
    else:
        candidate_function, _ = _unwrap_method(candidate)
        _reject_generators(candidate_function, "candidate")
        candidate = candidate_function
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty string or None, got {_describe(name)}")
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {_describe(enabled)}")

    def decorate(primary: F) -> F:
        function, method_kind = _unwrap_method(primary)
        if not callable(function):
            raise TypeError(f"@shadow must decorate a function or method, got {_describe(primary)}")
        _reject_generators(function, "the decorated function")
        signature = _signature_of(function)
        qualified = (
            name
            or f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
        )
        _check_key_names(config, signature, qualified)

        control = ShadowControl(
            name=qualified,
            candidate=candidate,
            config=config,
            enabled=enabled,
            signature=signature,
            method_kind=method_kind,
        )
        if inspect.iscoroutinefunction(function):
            wrapper = _async_wrapper(control)
        else:
            wrapper = _sync_wrapper(control)
        wrapped = _ShadowWrapper(primary, wrapper)
        wrapped._self_control = control  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate
