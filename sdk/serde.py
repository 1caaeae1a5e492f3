"""Serialization of handler inputs/outputs, state, run results and call arguments.

JSON by default; dataclasses and pydantic models (when installed) are reconstructed from a
type hint. Pluggable: pass any :class:`Serde` where the API takes ``serde=``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import typing
from typing import Any, Generic, TypeVar

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  (same name as restate-sdk)


def _pydantic_base() -> Any:
    try:
        from pydantic import BaseModel
    except ImportError:
        return None
    return BaseModel


_PYDANTIC: Any = _pydantic_base()


def is_pydantic(tp: Any) -> bool:
    return _PYDANTIC is not None and isinstance(tp, type) and issubclass(tp, _PYDANTIC)


def _to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if _PYDANTIC is not None and isinstance(obj, _PYDANTIC):
        return typing.cast(Any, obj).model_dump(mode="json")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _from_jsonable(tp: Any, data: Any) -> Any:
    """Rebuild a dataclass (recursively, following field type hints) from decoded JSON."""
    if data is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(data, dict):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _from_jsonable(hints.get(f.name), data[f.name])
                  for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    if is_pydantic(tp):
        return tp.model_validate(data)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and args and isinstance(data, list):
        return [_from_jsonable(args[0], x) for x in data]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _from_jsonable(non_none[0], data)
    return data


class Serde(Generic[T], abc.ABC):
    """Serializer/deserializer interface (same shape as restate-sdk's)."""

    @abc.abstractmethod
    def deserialize(self, buf: bytes) -> T | None: ...

    @abc.abstractmethod
    def serialize(self, obj: T | None) -> bytes: ...


class BytesSerde(Serde[bytes]):
    """Pass-through."""

    def deserialize(self, buf: bytes) -> bytes | None:
        return buf

    def serialize(self, obj: bytes | None) -> bytes:
        return b"" if obj is None else bytes(obj)


class JsonSerde(Serde[I]):
    """Plain ``json``; empty bytes mean None."""

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        return typing.cast(I, json.loads(buf))

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        return json.dumps(obj).encode()


class DefaultSerde(Serde[I]):
    """JSON, plus dataclasses / pydantic models rebuilt from ``type_hint``.

    None serializes to empty bytes and empty bytes deserialize to None, as in restate-sdk
    (a handler returning None answers an empty body).
    """

    __slots__ = ("type_hint",)

    def __init__(self, type_hint: Any = None) -> None:
        self.type_hint = type_hint

    def with_maybe_type(self, type_hint: Any = None) -> DefaultSerde[I]:
        return DefaultSerde(type_hint)

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        hint = self.type_hint
        if is_pydantic(hint):
            return typing.cast(I, hint.model_validate_json(buf))
        data = json.loads(buf)
        if hint is None or hint in _PLAIN:
            return typing.cast(I, data)
        return typing.cast(I, _from_jsonable(hint, data))

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        if _PYDANTIC is not None and isinstance(obj, _PYDANTIC):
            return bytes(typing.cast(Any, obj).model_dump_json().encode())
        return json.dumps(obj, default=_to_jsonable).encode()


#: the shared untyped default (a default argument value: DefaultSerde is immutable)
DEFAULT_SERDE: DefaultSerde[Any] = DefaultSerde()

_PLAIN: frozenset[Any] = frozenset({str, int, float, bool, dict, list, Any})

__all__ = ["DEFAULT_SERDE", "BytesSerde", "DefaultSerde", "JsonSerde", "Serde", "is_pydantic"]
