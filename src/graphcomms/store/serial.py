"""Engine objects as JSON-able dicts and back, exactly.

``Call`` and ``Operation`` are plain dataclasses, so one converter driven by
their type hints covers both, and every field the engine adds later:

- enums become their values, nested dataclasses become dicts, tuples and
  lists become lists;
- ``from_dict`` rebuilds each value from the field's declared type, so
  ``from_dict(Call, to_dict(call)) == call`` with the same types throughout
  (tuples stay tuples, enums stay enums).

A stored dict that lacks a field (written before the field existed) gets the
field's default; keys that are no longer fields are ignored. Rows written by
an older or newer build therefore still load.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from graphcomms.engine.call import Call
from graphcomms.engine.operation import Operation

_T = TypeVar("_T")

_Decoder = Callable[[Any], Any]
"""Turns a JSON value back into the value of one declared type."""

_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

# per dataclass, built on first use: the engine saves on every transition, so
# the type hints are read once, not once per write
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}
_FIELD_DECODERS: dict[type[Any], dict[str, _Decoder | None]] = {}


def call_to_dict(call: Call) -> dict[str, Any]:
    """Return ``call`` as a dict of JSON values."""
    return to_dict(call)


def call_from_dict(data: Mapping[str, Any]) -> Call:
    """Rebuild a ``Call`` from what ``call_to_dict`` returned."""
    return from_dict(Call, data)


def operation_to_dict(op: Operation) -> dict[str, Any]:
    """Return ``op`` as a dict of JSON values."""
    return to_dict(op)


def operation_from_dict(data: Mapping[str, Any]) -> Operation:
    """Rebuild an ``Operation`` from what ``operation_to_dict`` returned."""
    return from_dict(Operation, data)


def call_to_json(call: Call) -> str:
    """Return ``call`` as JSON text, as the stores keep it."""
    return dump_json(call_to_dict(call))


def call_from_json(text: str) -> Call:
    """Rebuild a ``Call`` from what ``call_to_json`` returned."""
    return call_from_dict(json.loads(text))


def operation_to_json(op: Operation) -> str:
    """Return ``op`` as JSON text, as the stores keep it."""
    return dump_json(operation_to_dict(op))


def operation_from_json(text: str) -> Operation:
    """Rebuild an ``Operation`` from what ``operation_to_json`` returned."""
    return operation_from_dict(json.loads(text))


def dump_json(value: Any) -> str:
    """Return ``value`` as compact JSON text, non-ASCII kept as is.

    Raises:
        TypeError: ``value`` holds something JSON has no form for.
        ValueError: ``value`` holds NaN or an infinity, which JSON lacks.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_dict(obj: Any) -> dict[str, Any]:
    """Return the dataclass instance ``obj`` as a dict of JSON values.

    Raises:
        TypeError: ``obj`` is not a dataclass instance, or holds a value of a
            type this module cannot round-trip.
    """
    return {name: _encode(getattr(obj, name)) for name in _field_names(type(obj))}


def from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """Rebuild an instance of the dataclass ``cls`` from what ``to_dict`` returned.

    Raises:
        TypeError: A field of ``cls`` has a type this module cannot rebuild.
    """
    kwargs = {}
    for name, decode in _field_decoders(cls).items():
        if name in data:
            value = data[name]
            kwargs[name] = value if decode is None else decode(value)
    return cls(**kwargs)


def _encode(value: Any) -> Any:
    # exact types: a StrEnum member is a str, and a NamedTuple a tuple, but
    # neither would come back as itself
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if kind is list or kind is tuple:
        return [_encode(item) for item in value]
    if kind is dict:
        return {key: _encode(item) for key, item in value.items()}
    if kind in _FIELD_NAMES or dataclasses.is_dataclass(kind):
        return to_dict(value)
    raise TypeError(f"cannot store a value of type {kind.__name__}")


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"expected a dataclass instance, got {cls.__name__}")
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def _field_decoders(cls: type[Any]) -> dict[str, _Decoder | None]:
    decoders = _FIELD_DECODERS.get(cls)
    if decoders is None:
        # the engine modules use postponed annotations: resolve them here
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        decoders = {f.name: _decoder(hints[f.name]) for f in fields}
        _FIELD_DECODERS[cls] = decoders
    return decoders


def _decoder(field_type: Any) -> _Decoder | None:
    """Return how to rebuild a value of ``field_type``; None if JSON has it right."""
    supertype = getattr(field_type, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _decoder(supertype)

    # generic aliases: X | None, list[X], tuple[...], dict[K, V]
    origin = typing.get_origin(field_type)
    args = typing.get_args(field_type)
    if origin is typing.Union or origin is types.UnionType:
        return _optional_decoder(field_type, args)
    if origin is list:
        return _list_decoder(_decoder(args[0]))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _tuple_decoder(_decoder(args[0]))
        return _pair_decoder([_decoder(a) for a in args])
    if origin is dict:
        return _dict_decoder(_decoder(args[1]))

    # classes: enums and nested dataclasses; scalars and Any are already right
    if isinstance(field_type, type):
        if issubclass(field_type, enum.Enum):
            return field_type
        if dataclasses.is_dataclass(field_type):
            return functools.partial(from_dict, field_type)
    return None


def _optional_decoder(field_type: Any, args: tuple[Any, ...]) -> _Decoder | None:
    options = [a for a in args if a is not type(None)]
    if len(options) != 1:
        # a JSON value alone cannot say which member of the union it came from
        raise TypeError(f"cannot decode the union {field_type}")
    inner = _decoder(options[0])
    if inner is None:
        return None
    return lambda value: None if value is None else inner(value)


def _list_decoder(item: _Decoder | None) -> _Decoder | None:
    if item is None:
        return None
    return lambda value: [item(v) for v in value]


def _tuple_decoder(item: _Decoder | None) -> _Decoder:
    if item is None:
        return tuple
    return lambda value: tuple(item(v) for v in value)


def _pair_decoder(items: list[_Decoder | None]) -> _Decoder:
    def decode(value: Any) -> tuple[Any, ...]:
        return tuple(
            v if item is None else item(v) for item, v in zip(items, value, strict=True)
        )

    return decode


def _dict_decoder(item: _Decoder | None) -> _Decoder | None:
    if item is None:
        return None
    return lambda value: {k: item(v) for k, v in value.items()}
