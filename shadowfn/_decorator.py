"""The ``@shadow`` decorator: sync and async call paths, side by side."""

from __future__ import annotations

import copy
import functools
import inspect
import time
import warnings
from collections.abc import Callable
from typing import Any, SupportsIndex, TypeVar, overload

import wrapt

from ._config import ShadowConfig
from ._control import ShadowControl, is_async_callable
from ._keys import KeySpec
from ._records import ResponseRecord
from ._runtime import _IN_CANDIDATE, SWITCH
from ._strict import DivergenceError, check_async, check_skipped, check_sync, is_strict, take_skipped
from ._tolerance import Tolerance

__all__ = ["CandidateNotFoundWarning", "shadow"]

F = TypeVar("F", bound=Callable[..., Any])


class _Default:
    """The marker default of a setting keyword, so an explicit value equal to the default counts as passed."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()


class CandidateNotFoundWarning(UserWarning):
    """A method-name candidate names no attribute of the class the method is defined in.

    Filter it with ``warnings.filterwarnings("ignore", category=CandidateNotFoundWarning)``
    when the candidate is set on each instance or defined only in subclasses.
    """


class _BoundShadowWrapper(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    @property
    def shadow(self) -> ShadowControl:
        control: ShadowControl = self._self_parent._self_control
        return control

    # A shadowed method, once looked up on an instance or a class, copies and
    # pickles like a plain bound method: pickled as getattr() on its instance or
    # class, and deep-copied bound to a deep copy of its instance.
    def __copy__(self) -> _BoundShadowWrapper:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _BoundShadowWrapper:
        instance = self._self_instance
        if self._self_binding != "function" or instance is None:
            return self
        rebound: _BoundShadowWrapper = self._self_parent.__get__(
            copy.deepcopy(instance, memo), self._self_owner
        )
        return rebound

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        instance = self._self_instance
        if self._self_binding == "function" and instance is not None:
            return getattr, (instance, self.__name__)
        return getattr, (self._self_owner, self.__name__)


class _ShadowWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    __bound_function_wrapper__ = _BoundShadowWrapper

    @property
    def shadow(self) -> ShadowControl:
        control: ShadowControl = self._self_control
        return control

    def __set_name__(self, owner: type, name: str) -> None:
        super().__set_name__(owner, name)  # type: ignore[misc]
        # A candidate named by a string is looked up per call, so a misspelled name
        # would otherwise show only as internal errors once calls arrive.
        candidate = self._self_control.candidate
        if isinstance(candidate, str) and not hasattr(owner, candidate):
            warnings.warn(
                f"candidate={candidate!r} on {owner.__qualname__}.{name} names no attribute of "
                f"{owner.__qualname__}; it is looked up on each instance at call time, so set it "
                "there or fix the name",
                CandidateNotFoundWarning,
                stacklevel=2,
            )

    # A shadowed function copies and pickles like a plain function: as itself, and
    # by reference to its module attribute. Without these, wrapt's proxy raises, and
    # a shadowed function passed as an argument makes that call uncopyable.
    def __copy__(self) -> _ShadowWrapper:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _ShadowWrapper:
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> str:
        qualname: str = self.__qualname__
        return qualname


def _sync_wrapper(control: ShadowControl) -> Callable[..., Any]:
    def call_sync(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not (SWITCH.enabled and control._enabled) or control._rate <= 0 or _IN_CANDIDATE.get():
            return wrapped(*args, **kwargs)
        shadow_call = control.begin(instance, args, kwargs, wrapped)
        if shadow_call is None:
            if is_strict():
                return _strict_without_candidate(control, wrapped, args, kwargs)
            return wrapped(*args, **kwargs)

        started = time.perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            shadow_call.primary_raised(exc, time.perf_counter() - started)
            if isinstance(exc, Exception) and is_strict():
                __tracebackhide__ = True
                try:
                    check_sync(shadow_call)
                except DivergenceError as error:
                    raise error from exc
            raise
        shadow_call.primary_returned(result, time.perf_counter() - started)
        if is_strict():
            # Strict mode, chosen by the user: wait for the candidate and raise on a mismatch.
            __tracebackhide__ = True  # pytest shows the test's line, not this frame.
            check_sync(shadow_call)
        return result

    return call_sync


def _async_wrapper(control: ShadowControl) -> Callable[..., Any]:
    async def call_async(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not (SWITCH.enabled and control._enabled) or control._rate <= 0 or _IN_CANDIDATE.get():
            return await wrapped(*args, **kwargs)
        shadow_call = control.begin(instance, args, kwargs, wrapped)
        if shadow_call is None:
            if is_strict():
                skipped = take_skipped()
                result = await wrapped(*args, **kwargs)
                __tracebackhide__ = True
                check_skipped(control.name, skipped)
                return result
            return await wrapped(*args, **kwargs)

        started = time.perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            shadow_call.primary_raised(exc, time.perf_counter() - started)
            if isinstance(exc, Exception) and is_strict():
                __tracebackhide__ = True
                try:
                    await check_async(shadow_call)
                except DivergenceError as error:
                    raise error from exc
            raise
        shadow_call.primary_returned(result, time.perf_counter() - started)
        if is_strict():
            # Strict mode, chosen by the user: await the candidate and raise on a mismatch.
            __tracebackhide__ = True
            await check_async(shadow_call)
        return result

    return call_async


def _strict_without_candidate(
    control: ShadowControl, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run the primary of a call that started no candidate; in strict mode, raise if it was sampled."""
    skipped = take_skipped()
    result = wrapped(*args, **kwargs)
    __tracebackhide__ = True
    check_skipped(control.name, skipped)
    return result


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return f"{text[:80]} ({type(value).__name__})"


def default_name(function: Any) -> str:
    """Name a callable for logs and stats by module and qualified name, never by its address.

    A callable object is named by its class and a ``functools.partial`` by the
    function it wraps, because their ``repr`` holds a memory address that
    differs in every process.
    """
    if isinstance(function, functools.partial):
        return f"functools.partial({default_name(function.func)})"
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(qualname, str):
        kind = type(function)
        return f"{kind.__module__}.{kind.__qualname__}"

    return f"{getattr(function, '__module__', '?')}.{qualname}"


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
    if not isinstance(names, tuple):
        return
    if signature is None:
        raise ValueError(
            f"key names parameters {names!r}, but {name} has no introspectable signature; "
            "pass key= a function of the arguments instead"
        )
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
    tolerance: float | dict[str, float] | Tolerance | None = ...,
    unordered: tuple[str, ...] | list[str] | str = ...,
    noise_rate: float = ...,
    pure: bool = ...,
    redact: tuple[str, ...] | list[str] | str = ...,
) -> Callable[[F], F]: ...


@overload
def shadow(
    candidate: Callable[..., Any] | str, *, config: ShadowConfig, name: str | None = ..., enabled: bool = ...
) -> Callable[[F], F]: ...


def shadow(
    candidate: Callable[..., Any] | str,
    *,
    rate: Any = _DEFAULT,
    timeout: Any = _DEFAULT,
    key: Any = _DEFAULT,
    ignore: Any = _DEFAULT,
    compare: Any = _DEFAULT,
    adapter: Any = _DEFAULT,
    name: str | None = None,
    enabled: bool = True,
    copy_args: Any = _DEFAULT,
    max_pending: Any = _DEFAULT,
    tolerance: Any = _DEFAULT,
    unordered: Any = _DEFAULT,
    noise_rate: Any = _DEFAULT,
    pure: Any = _DEFAULT,
    redact: Any = _DEFAULT,
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
        tolerance: How far apart two body numbers (at least one a float) may be
            and still match: a number (absolute), ``{"abs": ..., "rel": ...}`` or
            a ``Tolerance``; the rule of ``math.isclose``. Applies only where
            ``==`` on the records fails.
        unordered: Paths of lists compared without regard to order, in the
            syntax of ``ignore``, such as ``"body.items"`` or ``"body.**.tags"``.
        noise_rate: Percent of sampled calls on which the primary runs a second
            time, off the caller's path, to learn which paths differ on their own;
            requires ``pure=True``. Divergence paths that the noise explains are
            marked in ``shadowfn.log`` entries (``noisy_paths``).
        pure: Declares that the primary has no side effects, so noise runs may
            call it again.
        redact: Paths whose values are replaced by ``"<redacted>"`` in everything
            logged or kept in ``shadowfn.log``, in the ``ignore`` syntax, such as
            ``"body.user.email"`` or ``"body.**.token"``; ``"error"`` hides
            exception messages. The ``authorization``, ``proxy-authorization``,
            ``cookie`` and ``set-cookie`` headers are always redacted.
        config: A ``ShadowConfig`` holding the settings from ``rate`` to
            ``redact`` (all but ``name`` and ``enabled``), instead of keywords.
            Passing it together with one of those keywords raises TypeError.

    Settings left out take ``ShadowConfig``'s defaults: rate 100, timeout 2.0,
    key None, ignore (), compare None, adapter None, copy_args True,
    max_pending None, tolerance None, unordered (), noise_rate 0, pure False
    and redact ().

    Raises:
        TypeError, ValueError: at decoration time, for an invalid setting; the
            message names the parameter, shows the value and says what is accepted.
        DivergenceError: from a call, only inside ``shadowfn.strict()`` (or the
            pytest plugin's ``shadowfn_strict``), the one mode in which shadowfn
            raises into the caller, by the user's choice.
    """
    settings = {
        "rate": rate,
        "timeout": timeout,
        "key": key,
        "ignore": ignore,
        "compare": compare,
        "adapter": adapter,
        "copy_args": copy_args,
        "max_pending": max_pending,
        "tolerance": tolerance,
        "unordered": unordered,
        "noise_rate": noise_rate,
        "pure": pure,
        "redact": redact,
    }
    passed = {setting: value for setting, value in settings.items() if value is not _DEFAULT}
    if config is None:
        config = ShadowConfig(**passed)
    elif not isinstance(config, ShadowConfig):
        raise TypeError(f"config must be a ShadowConfig, got {_describe(config)}")
    elif passed:
        names = ", ".join(f"{setting}=" for setting in passed)
        raise TypeError(
            f"pass settings either as keywords or as config=, not both: got config= and {names}; "
            f"derive a config instead, such as config.with_{next(iter(passed))}(...)"
        )

    candidate_binds = False
    if isinstance(candidate, str):
        if not candidate.isidentifier():
            raise ValueError(f"candidate must be a callable or a method name, got {_describe(candidate)}")
    elif not callable(candidate) and not isinstance(candidate, (classmethod, staticmethod)):  # type: ignore[unreachable]
        raise TypeError(f"candidate must be a callable or the name of a method, got {_describe(candidate)}")
    else:
        # A plain function binds to the instance like a method; bound methods,
        # staticmethods and other callables are called as they are.
        candidate_binds = inspect.isfunction(candidate)
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
            raise TypeError(
                f"@shadow must decorate a function or method, got {_describe(primary)}; "
                "if this is a call of a function decorated with a bare @shadow, "
                "write @shadow(candidate) with the new implementation instead"
            )
        _reject_generators(function, "the decorated function")
        signature = _signature_of(function)
        qualified = name or default_name(function)
        _check_key_names(config, signature, qualified)
        if isinstance(candidate, str) and method_kind == "staticmethod":
            raise TypeError(
                f"candidate {candidate!r} names a method, but {qualified} is a staticmethod, which has "
                "no instance or class to look it up on; pass the candidate function itself"
            )

        # An object with an async __call__ returns a coroutine too, so it takes the async path.
        primary_is_async = is_async_callable(function)
        control = ShadowControl(
            name=qualified,
            candidate=candidate,
            config=config,
            enabled=enabled,
            signature=signature,
            method_kind=method_kind,
            primary_is_async=primary_is_async,
            candidate_binds=candidate_binds,
        )
        if primary_is_async:
            wrapper = _async_wrapper(control)
        else:
            wrapper = _sync_wrapper(control)
        wrapped = _ShadowWrapper(primary, wrapper)
        wrapped._self_control = control  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate
