"""B-trees of JSON-able keys and values (sop4py's ``Btree``): plain keys (str, numbers, ...)
or complex keys (dataclasses, dicts) ordered by an :class:`IndexSpecification`."""

import dataclasses
import json
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, List, Optional, TypeVar, Union

from . import _json

TK = TypeVar("TK")
TV = TypeVar("TV")

NIL_ID = str(uuid.UUID(int=0))


class ValueDataSize(Enum):
    """How big values are: small ones live in the tree's nodes, big ones beside them."""

    Small = 0
    Medium = 1
    Big = 2


class PagingDirection(Enum):
    Forward = 0
    Backward = 1


@dataclass
class PagingInfo:
    """A page from the cursor: skip ``page_offset`` pages of ``page_size``, then fetch
    ``fetch_count`` items (0: one page), in ``direction``. The cursor ends past the page, so
    the next call gets the next page."""

    page_offset: int = 0
    page_size: int = 20
    fetch_count: int = 0
    direction: int = PagingDirection.Forward.value

    def _json(self) -> str:
        d = self.direction.value if isinstance(self.direction, PagingDirection) else self.direction
        if d not in (0, 1):
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(f"direction {d} is not 0 (Forward) or 1 (Backward)")
        return json.dumps({
            "page_offset": self.page_offset,
            "page_size": self.page_size,
            "fetch_count": self.fetch_count,
            "direction": "Backward" if d == 1 else "Forward",
        })


@dataclass
class IndexFieldSpecification:
    """One field of a complex key, and its order."""

    field_name: str
    ascending_sort_order: bool = True


@dataclass
class IndexSpecification:
    """The fields of a complex key that order the tree, most significant first."""

    index_fields: Any = None

    def _json(self) -> str:
        fields = [dataclasses.asdict(f) if dataclasses.is_dataclass(f) else dict(f)
                  for f in (self.index_fields or ())]
        return json.dumps({"index_fields": fields})


@dataclass
class BtreeOptions:
    """How a tree is made (sop4py's options; the cache and relation fields are accepted and
    not used: sop-rs sizes its caches per database)."""

    name: str = ""
    is_unique: bool = False
    slot_length: int = 500
    description: str = ""
    is_value_data_in_node_segment: bool = True
    is_value_data_actively_persisted: bool = False
    is_value_data_globally_cached: bool = False
    index_specification: str = ""
    transaction_id: str = NIL_ID
    cache_config: Any = None
    is_primitive_key: bool = True
    leaf_load_balancing: bool = False
    relations: Any = None

    def set_index_specification(self, spec: IndexSpecification) -> None:
        self.index_specification = spec._json()
        self.is_primitive_key = False

    def set_value_data_size(self, s: ValueDataSize) -> None:
        # sop4py's presets: small values in the nodes; medium beside them and cached; big
        # beside them, written as they are added.
        self.is_value_data_in_node_segment = s == ValueDataSize.Small
        self.is_value_data_globally_cached = s == ValueDataSize.Medium
        self.is_value_data_actively_persisted = s == ValueDataSize.Big

    def _json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in (
            "is_unique", "slot_length", "description", "is_value_data_in_node_segment",
            "is_value_data_actively_persisted", "is_value_data_globally_cached",
            "leaf_load_balancing")})


@dataclass
class Item(Generic[TK, TV]):
    """A key, its value and its id (which of equal keys, in a non-unique tree)."""

    key: TK
    value: TV = None
    id: str = NIL_ID


def _item_json(i: Item) -> dict:
    d = {"key": _json.plain(i.key, "key")}
    if i.value is not None:
        d["value"] = _json.plain(i.value, "value")
    if i.id and i.id != NIL_ID:
        d["id"] = str(i.id)
    return d


def _items(key, value) -> str:
    if isinstance(key, Item):
        items = [key]
    elif isinstance(key, list) and all(isinstance(k, Item) for k in key) and key:
        items = key
    else:
        items = [Item(key=key, value=value)]
    return _json.dumps([_item_json(i) for i in items], "item")


def _from_json(d: dict) -> Item:
    return Item(key=d.get("key"), value=d.get("value"), id=d.get("id") or NIL_ID)


class Btree(Generic[TK, TV]):
    """A B-tree in a transaction. Every call takes sop4py's ``ctx`` first (ignored)."""

    def __init__(self, native, transaction=None):
        self._native = native
        self.transaction = transaction

    @property
    def name(self) -> str:
        return self._native.name

    def add(self, ctx, key: Union[TK, Item, List[Item]], value: TV = None) -> bool:
        """Adds an item (or items): ``True`` when all were added (a unique tree keeps an
        existing key and answers ``False``)."""
        return self._native.add(_items(key, value))

    def add_if_not_exists(self, ctx, key, value: TV = None) -> bool:
        """Adds the items whose keys are not there yet."""
        return self._native.add_if_not_exist(_items(key, value))

    def update(self, ctx, key, value: TV = None) -> bool:
        """Sets the values of existing keys: ``True`` when all were there."""
        return self._native.update(_items(key, value))

    def upsert(self, ctx, key, value: TV = None) -> bool:
        """Adds or updates."""
        return self._native.upsert(_items(key, value))

    def remove(self, ctx, keys) -> bool:
        """Removes a key (or a list of keys): ``True`` when all were there."""
        if not isinstance(keys, list):
            keys = [keys]
        return self._native.remove(_json.dumps([k.key if isinstance(k, Item) else k for k in keys]))

    def find(self, ctx, key: TK) -> bool:
        """Places the cursor on ``key`` (a dict works for a dataclass key): ``True`` when found."""
        return self._native.find(_json.dumps(_json.plain(key)))

    def find_with_id(self, ctx, key: TK, id) -> bool:
        """Places the cursor on the item of ``key`` with ``id``."""
        return self._native.find_with_id(_json.dumps(key), str(id))

    def first(self, ctx=None) -> bool:
        return self._native.step("first")

    def last(self, ctx=None) -> bool:
        return self._native.step("last")

    def next(self, ctx=None) -> bool:
        return self._native.step("next")

    def previous(self, ctx=None) -> bool:
        return self._native.step("previous")

    def get_current_item(self, ctx=None) -> Optional[Item]:
        """The item at the cursor, or ``None``."""
        t = self._native.current_item()
        return None if t is None else _from_json(_json.loads(t))

    def get_current_key(self, ctx=None) -> Optional[Item]:
        """The key (and id) at the cursor, or ``None``."""
        i = self.get_current_item(ctx)
        return None if i is None else Item(key=i.key, id=i.id)

    get_current_value = get_current_item

    def get_keys(self, ctx, paging_info: Optional[PagingInfo] = None) -> List[Item]:
        """A page of keys from the cursor."""
        return [_from_json(d) for d in _json.loads(self._native.get_keys((paging_info or PagingInfo())._json()))]

    def get_items(self, ctx, paging_info: Optional[PagingInfo] = None) -> List[Item]:
        """A page of items from the cursor."""
        return [_from_json(d) for d in _json.loads(self._native.get_items((paging_info or PagingInfo())._json()))]

    def get_values(self, ctx, keys: Union[Item, List[Item]]) -> List[Item]:
        """The values of the given keys (with ids, in a non-unique tree)."""
        if not isinstance(keys, list):
            keys = [keys]
        keys = [k if isinstance(k, Item) else Item(key=k) for k in keys]
        payload = _json.dumps([{k: v for k, v in _item_json(i).items() if k != "value"} for i in keys])
        return [_from_json(d) for d in _json.loads(self._native.get_values(payload))]

    def get(self, ctx, key: TK) -> Optional[TV]:
        """The value of ``key``, or ``None``."""
        t = self._native.get(_json.dumps(key))
        return None if t is None else _json.loads(t)

    def count(self, ctx=None) -> int:
        return self._native.count()

    def is_unique(self) -> bool:
        return self._native.is_unique

    def get_store_info(self) -> BtreeOptions:
        spec = self._native.spec
        return BtreeOptions(name=self.name, is_unique=self._native.is_unique,
                            index_specification=spec or "", is_primitive_key=spec is None)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"Btree({self.name!r})"
