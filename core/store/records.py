"""Values of the partition store: a state dataclass as one msgpack array of its fields.

`encode(obj)` packs the fields in declaration order behind a format byte; `decode(cls, data)`
rebuilds the object, turning msgpack's lists back into what the field's type says (sets,
tuples, lists of tuples, StrEnums). A later format may only append fields with defaults, so an
older record still decodes (the missing fields take their defaults). Fields named in `skip`
(an invocation's journal, stored as its own rows) are left out.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import msgpack

FORMAT = 1
_FORMAT = bytes([FORMAT])
T = TypeVar("T")
Convert = Callable[[Any], Any]


class RecordError(ValueError):
    """A store value that does not decode."""


def _converter(hint: Any) -> Convert | None:
    """How to turn a decoded msgpack value back into a value of type `hint` (None: as is)."""
    if isinstance(hint, types.UnionType):  # X | None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        conv = _converter(inner[0]) if len(inner) == 1 else None
        return None if conv is None else (lambda v: None if v is None else conv(v))
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is set:
        return set
    if origin is tuple:
        return tuple
    if origin is list and args:
        item = _converter(args[0])
        return None if item is None else (lambda v: [item(x) for x in v])
    return None


class _Spec:
    def __init__(self, cls: type[Any], skip: Collection[str]) -> None:
        hints = typing.get_type_hints(cls)
        self.names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
        self.get = operator.attrgetter(*self.names)  # the fields as a tuple, in C
        self.converts = [(i, c) for i, n in enumerate(self.names)
                         if (c := _converter(hints[n])) is not None]


_SPECS: dict[tuple[type[Any], tuple[str, ...]], _Spec] = {}


def _spec(cls: type[Any], skip: Collection[str]) -> _Spec:
    k = (cls, tuple(skip))
    spec = _SPECS.get(k)
    if spec is None:
        spec = _SPECS[k] = _Spec(cls, skip)
    return spec


def _default(v: Any) -> Any:
    if isinstance(v, set | frozenset):
        return sorted(v)
    raise TypeError(f"cannot store a {type(v).__name__}")


def encode(obj: Any, skip: Collection[str] = ()) -> bytes:
    spec = _spec(type(obj), skip)
    return _FORMAT + msgpack.packb(spec.get(obj), use_bin_type=True, default=_default)


def decode(cls: type[T], data: bytes, skip: Collection[str] = ()) -> T:
    if not data or data[0] != FORMAT:
        raise RecordError(f"{cls.__name__}: unknown record format {data[:1]!r}")
    try:
        values = msgpack.unpackb(data[1:], raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as e:
        raise RecordError(f"{cls.__name__}: undecodable record: {e}") from e
    spec = _spec(cls, skip)
    if not isinstance(values, list) or len(values) > len(spec.names):
        raise RecordError(f"{cls.__name__}: {len(values)} fields, expected {len(spec.names)}")
    for i, conv in spec.converts:
        if i < len(values):
            values[i] = conv(values[i])
    return cls(**dict(zip(spec.names, values, strict=False)))
