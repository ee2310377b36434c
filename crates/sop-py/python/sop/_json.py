"""Python values to the JSON text the native module takes, and back."""

import dataclasses
import json
import re
from enum import Enum
from typing import Any

from .errors import InvalidKeyError


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        raise TypeError("a set has no order to store; use a list")
    raise TypeError(f"{type(obj).__name__} is not JSON (use a dataclass, dict, list, str, number, bool or None)")


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_LONG_DIGITS = re.compile(r"\d{19,}")


def _check_ints(obj: Any, what: str) -> None:
    # The engine's JSON numbers are 64-bit integers or floats: a bigger integer would come
    # back as a float, and two such keys could collide.
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, bool):
            continue
        if isinstance(o, int):
            if not _INT_MIN <= o <= _INT_MAX:
                raise InvalidKeyError(f"{what}: the integer {o} is outside 64 bits; store it as a string")
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)


def plain(obj: Any, what: str = "key") -> Any:
    """``obj`` with dataclasses turned into dicts (what is stored)."""
    return json.loads(dumps(obj, what))


def dumps(obj: Any, what: str = "key") -> str:
    try:
        text = json.dumps(obj, default=_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InvalidKeyError(f"{what}: {e}") from None
    # Only text with a run of 19+ digits can hold an integer beyond 64 bits: check those.
    if _LONG_DIGITS.search(text):
        _check_ints(json.loads(text), what)
    return text


def loads(text: str) -> Any:
    return json.loads(text)
