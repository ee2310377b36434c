"""The transactional vector store (sop4py's ``ai.VectorStore``)."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .. import _json


@dataclass
class Item:
    """A vector, its id and a JSON payload. ``centroid_id`` is kept for sop4py; the store
    decides placement."""

    id: str
    vector: List[float]
    payload: Dict[str, Any] = field(default_factory=dict)
    centroid_id: int = 0


@dataclass
class Hit:
    """A query result: ``score`` is the cosine similarity or inner product (larger is
    closer), or the L2 distance (smaller is closer)."""

    id: str
    score: float
    payload: Dict[str, Any]


def _item(i: Item) -> dict:
    return {"id": str(i.id), "vector": [float(x) for x in i.vector], "payload": _json.plain(i.payload)}


class VectorStore:
    """Vectors with payloads, searched by similarity, in the transaction that opened it."""

    def __init__(self, native):
        self._native = native

    def upsert(self, ctx, item: Item) -> None:
        self._native.upsert(_json.dumps(_item(item), "item"))

    def upsert_batch(self, ctx, items: List[Item]) -> None:
        self._native.upsert_batch(_json.dumps([_item(i) for i in items], "items"))

    def get(self, ctx, id: str) -> Optional[Item]:
        t = self._native.get(str(id))
        if t is None:
            return None
        d = _json.loads(t)
        return Item(id=d["id"], vector=d["vector"], payload=d["payload"])

    def delete(self, ctx, id: str) -> bool:
        return self._native.delete(str(id))

    def query(self, ctx, vector: List[float], k: int = 10, filter: Optional[Dict[str, Any]] = None,
              nprobe: int = 8) -> List[Hit]:
        """The ``k`` nearest items; ``filter`` keeps items whose payload has each field equal."""
        f = None if filter is None else _json.dumps(filter, "filter")
        hits = _json.loads(self._native.query([float(x) for x in vector], int(k), int(nprobe), f))
        return [Hit(id=h["id"], score=h["score"], payload=h["payload"]) for h in hits]

    def count(self, ctx=None) -> int:
        return self._native.count()

    def optimize(self, ctx=None) -> dict:
        """Trains the index (k-means) in transactions of its own: what this transaction has not
        committed is not part of it."""
        return _json.loads(self._native.optimize())
