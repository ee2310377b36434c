"""The versioned model store (sop4py's ``ai.ModelStore``)."""

from typing import Any, List, Optional

from .. import _json


class ModelStore:
    """Models (any JSON-able object) by category and name, versioned: each ``save`` makes a
    new version, ``get`` returns the latest."""

    def __init__(self, native):
        self._native = native

    def save(self, ctx, category: str, name: str, model: Any) -> int:
        """Saves ``model`` as the next version: its number."""
        return self._native.save(str(category), str(name), _json.dumps(model, "model"))

    def get(self, ctx, category: str, name: str, version: int = 0) -> Optional[Any]:
        """The latest version (or ``version``), or ``None``."""
        t = self._native.get(str(category), str(name), int(version))
        return None if t is None else _json.loads(t)

    load = get

    def versions(self, ctx, category: str, name: str) -> List[int]:
        return self._native.versions(str(category), str(name))

    def list(self, ctx, category: str) -> List[str]:
        return self._native.list(str(category))

    def categories(self, ctx=None) -> List[str]:
        return self._native.categories()

    def delete(self, ctx, category: str, name: str) -> int:
        """Deletes every version: how many there were (0: none, not an error)."""
        return self._native.delete(str(category), str(name))
