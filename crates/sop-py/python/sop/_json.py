"""Python values to the JSON text the native module takes, and back."""

import dataclasses
import json
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


def plain(obj: Any) -> Any:
    """``obj`` with dataclasses turned into dicts (what is stored)."""
    return json.loads(dumps(obj))


def dumps(obj: Any, what: str = "key") -> str:
    try:
        return json.dumps(obj, default=_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InvalidKeyError(f"{what}: {e}") from None


def loads(text: str) -> Any:
    return json.loads(text)
