"""sop: sop-rs for Python (sop4py's API).

Transactional B-trees, BM25 text search, vector and model stores, streamed values, in one
embedded database folder (or many processes sharing one, through Redis)::

    from sop import Context, Item
    from sop.database import Database, DatabaseOptions

    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=["data/my_db"]))
    with db.begin_transaction(ctx) as tx:
        users = db.new_btree(ctx, "users", tx)
        users.add(ctx, Item(key="user_123", value="John Doe"))
"""

from . import errors
from .btree import (Btree, BtreeOptions, IndexFieldSpecification, IndexSpecification, Item,
                    PagingDirection, PagingInfo, ValueDataSize)
from .context import Context
from .database import Database
from .errors import *  # noqa: F401,F403
from .search import Index, SearchResult
from .streaming import StreamingStore
from .transaction import (DatabaseOptions, DatabaseType, ErasureCodingConfig, RedisCacheConfig,
                          Transaction, TransactionMode, TransactionOptions)

__version__ = "0.1.0"

__all__ = [
    "Btree", "BtreeOptions", "Context", "Database", "DatabaseOptions", "DatabaseType",
    "ErasureCodingConfig", "Index", "IndexFieldSpecification", "IndexSpecification", "Item",
    "PagingDirection", "PagingInfo", "RedisCacheConfig", "SearchResult", "StreamingStore",
    "Transaction", "TransactionMode", "TransactionOptions", "ValueDataSize", "errors",
] + errors.__all__
