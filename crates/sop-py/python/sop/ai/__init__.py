"""sop4py's ``sop.ai``: the same :class:`Database`, vector items and hits, model store."""

from ..database import Database
from ..transaction import DatabaseType
from .model import ModelStore
from .vector import Hit, Item, VectorStore

__all__ = ["Database", "DatabaseType", "Hit", "Item", "ModelStore", "VectorStore"]
