"""A class's params checked against the types and ranges its constructor declares.

A file's ``params: {steps: "ten"}`` would otherwise reach the constructor in a worker
process minutes into a run. pydantic validates each value against the parameter's
annotation, including ranges declared with ``Annotated`` (``Annotated[int,
Field(ge=1)]``, as arl's own conditions do). Validation is strict and in JSON mode, since
params are JSON-like data: ``3`` is no string, ``"3"`` no integer, a list may stand for a
tuple. Values are only checked, never converted: the constructor gets what the file says.

A parameter without an annotation, or with one pydantic cannot check (a class of the
user's, ``numpy.ndarray``, a name it cannot resolve), is not checked.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import PydanticUserError, TypeAdapter, ValidationError

from arl.config.report import DocPath, describe


def type_problems(target: Callable[..., Any], params: Mapping[str, Any]) -> Iterator[tuple[DocPath, str]]:
    """(path from the param's name down to the value refused, message) for each value in
    ``params`` that the annotation of ``target``'s parameter of that name refuses."""
    adapters = _adapters(target)
    name = getattr(target, "__qualname__", repr(target))
    for key, value in params.items():
        adapter = adapters.get(key)
        if adapter is None:
            continue
        try:
            adapter.validate_json(json.dumps(value), strict=True)
        except ValidationError as exc:
            for error in exc.errors():
                yield (key, *error["loc"]), f"{name} parameter {key!r}: {describe(error)}"


@functools.cache
def _adapters(target: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    """A validator for each of ``target``'s parameters whose annotation pydantic can check."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some C-implemented classes have no signature
        return {}
    adapters: dict[str, TypeAdapter[Any]] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        annotation = _evaluated(target, parameter.annotation)
        if annotation is inspect.Parameter.empty:
            continue
        try:
            adapters[name] = TypeAdapter(annotation)
        except (PydanticUserError, TypeError, NameError):  # a type pydantic has no schema for
            continue
    return adapters


def _evaluated(target: Callable[..., Any], annotation: Any) -> Any:
    """``annotation``, evaluated where the constructor was written if it is a string
    (``from __future__ import annotations``); ``Parameter.empty`` if that fails (a name
    only a type checker imports), one parameter at a time, so the others are checked."""
    if not isinstance(annotation, str):
        return annotation
    function = inspect.unwrap(target.__init__ if isinstance(target, type) else target)  # type: ignore[misc]
    scope = dict(getattr(function, "__globals__", {}))
    if isinstance(target, type):
        scope.update(vars(target))
    try:
        return eval(annotation, scope)
    except (NameError, AttributeError, SyntaxError, TypeError):
        return inspect.Parameter.empty
