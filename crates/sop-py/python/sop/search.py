"""A transactional BM25 text index (sop4py's ``search.Index``)."""

from dataclasses import dataclass
from typing import List


@dataclass
class SearchResult:
    """A matching document and its BM25 score (``DocID``/``Score`` are sop4py's names)."""

    DocID: str
    Score: float

    @property
    def doc_id(self) -> str:
        return self.DocID

    @property
    def score(self) -> float:
        return self.Score


class Index:
    """Documents indexed for BM25 search, in the transaction that opened it."""

    def __init__(self, native):
        self._native = native

    def add(self, doc_id: str, text: str) -> None:
        """Indexes ``text`` as ``doc_id`` (replacing what it was)."""
        self._native.add(str(doc_id), str(text))

    def remove(self, doc_id: str) -> bool:
        return self._native.remove(str(doc_id))

    def search(self, query: str, k: int = 10) -> List[SearchResult]:
        """The ``k`` best documents for ``query``, best first."""
        return [SearchResult(d, s) for d, s in self._native.search(str(query), int(k))]

    def count(self) -> int:
        return self._native.count()
