"""``Database``: one entry point for B-trees, text indexes, vector, model and streaming stores."""

import os
from typing import Optional

from . import _sop
from .btree import Btree, BtreeOptions, IndexSpecification
from .errors import InvalidArgumentError
from .search import Index
from .transaction import (DatabaseOptions, DatabaseType, RedisCacheConfig, Transaction,  # noqa: F401
                          TransactionMode, TransactionOptions, _mode)


def _folder(options: DatabaseOptions) -> str:
    folders = list(options.stores_folders or [])
    if options.storage_path:
        folders = [options.storage_path] + [f for f in folders if f != options.storage_path]
    if not folders:
        raise InvalidArgumentError("DatabaseOptions needs a folder: stores_folders=[path] or storage_path=path")
    if len(folders) > 1:
        raise InvalidArgumentError(
            "one folder per database from Python (replication across folders is set up from Rust)")
    if options.erasure_config:
        raise InvalidArgumentError("erasure coding is configured from Rust or the CLI, not from Python yet")
    if options.keyspace:
        raise InvalidArgumentError("keyspace is a Cassandra setting; sop-rs keeps everything in the folder")
    return folders[0]


class Database:
    """A database folder. Standalone (one process) or clustered (many processes, Redis)::

        db = Database(DatabaseOptions(stores_folders=["data/my_db"]))
        with db.begin_transaction(ctx) as tx:
            users = db.new_btree(ctx, "users", tx)
    """

    def __init__(self, options: Optional[DatabaseOptions] = None, *, ctx=None, **kwargs):
        if options is None:
            options = DatabaseOptions(**kwargs)
        self.options = options
        self.path = os.fspath(_folder(options))
        url = None
        if options.type in (DatabaseType.Clustered, DatabaseType.Clustered.value):
            url = (options.redis_config or RedisCacheConfig()).to_url()
        self._native = _sop.NativeDatabase(self.path, url)

    # -- transactions ------------------------------------------------------------------------
    def begin_transaction(self, ctx=None, mode=TransactionMode.ForWriting.value, max_time: int = 15,
                          options: Optional[TransactionOptions] = None) -> Transaction:
        """Begins a transaction (``mode`` a :class:`TransactionMode` or its value; ``max_time``
        in minutes). Use it in a ``with`` block to commit or roll back on its own."""
        if isinstance(mode, TransactionOptions):  # sop4py callers may pass options second
            options = mode
        if options is not None:
            mode, max_time = options.mode, options.max_time or 15
        return Transaction(self._native.begin(_mode(mode), float(max_time) * 60.0), self)

    # -- B-trees -----------------------------------------------------------------------------
    def new_btree(self, ctx, name: str, trans: Transaction, options: Optional[BtreeOptions] = None,
                  index_spec: Optional[IndexSpecification] = None) -> Btree:
        """Creates the B-tree ``name`` (``index_spec``: complex keys ordered by those fields)."""
        options = options or BtreeOptions()
        spec = None
        if index_spec is not None:
            spec = index_spec._json()
        elif options.index_specification:
            spec = options.index_specification
        return Btree(trans._native.new_btree(name or options.name, options._json(), spec), trans)

    def open_btree(self, ctx, name: str, trans: Transaction) -> Btree:
        """Opens the B-tree ``name`` (its index specification comes with it)."""
        return Btree(trans._native.open_btree(name), trans)

    def remove_btree(self, ctx, name: str) -> None:
        """Removes a store and everything in it."""
        self._native.remove_btree(name)

    def stores(self, ctx=None):
        """The names of the stores."""
        return self._native.stores()

    # -- upper layers ------------------------------------------------------------------------
    def open_search(self, ctx, name: str, trans: Transaction) -> Index:
        """Opens (creating when missing) the BM25 text index ``name``."""
        return Index(trans._native.open_search(name))

    def open_vector_store(self, ctx, trans: Transaction, name: str, metric: str = "cosine"):
        """Opens the vector store ``name`` (made on its first upsert, with that vector's
        dimension). ``metric``: "cosine", "l2" or "dot" (for a new store)."""
        from .ai.vector import VectorStore

        return VectorStore(trans._native.open_vector_store(name, metric))

    def open_model_store(self, ctx, trans: Transaction, name: str):
        """Opens (creating when missing) the model store ``name``."""
        from .ai.model import ModelStore

        return ModelStore(trans._native.open_model_store(name))

    def open_streaming_store(self, ctx, trans: Transaction, name: str, chunk_size: int = 0):
        """Opens (creating when missing) a store of streamed byte values of any size."""
        from .streaming import StreamingStore

        return StreamingStore(trans._native.open_streaming(name, chunk_size))

    # -- life --------------------------------------------------------------------------------
    def close(self) -> None:
        """Closes the database: later calls raise ``DatabaseClosedError``."""
        self._native.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"Database({self.path!r})"
